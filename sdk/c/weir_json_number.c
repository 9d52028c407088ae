/* weir_json_number.c — JSON numbers read exactly as serde_json reads them. */
#include "weir_impl.h"

#include <math.h>

/* =============================================================================================
 * JSON numbers, read exactly as serde_json 1.x reads them (without `float_roundtrip`): integers
 * that fit stay u64/i64, everything else is a double computed as `significand (*|/) 10^exp`.
 * ============================================================================================= */

static const double POW10[309] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
    1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35,
    1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56, 1e57, 1e58, 1e59,
    1e60, 1e61, 1e62, 1e63, 1e64, 1e65, 1e66, 1e67, 1e68, 1e69, 1e70, 1e71,
    1e72, 1e73, 1e74, 1e75, 1e76, 1e77, 1e78, 1e79, 1e80, 1e81, 1e82, 1e83,
    1e84, 1e85, 1e86, 1e87, 1e88, 1e89, 1e90, 1e91, 1e92, 1e93, 1e94, 1e95,
    1e96, 1e97, 1e98, 1e99, 1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107,
    1e108, 1e109, 1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119,
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129, 1e130, 1e131,
    1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139, 1e140, 1e141, 1e142, 1e143,
    1e144, 1e145, 1e146, 1e147, 1e148, 1e149, 1e150, 1e151, 1e152, 1e153, 1e154, 1e155,
    1e156, 1e157, 1e158, 1e159, 1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167,
    1e168, 1e169, 1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179,
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189, 1e190, 1e191,
    1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199, 1e200, 1e201, 1e202, 1e203,
    1e204, 1e205, 1e206, 1e207, 1e208, 1e209, 1e210, 1e211, 1e212, 1e213, 1e214, 1e215,
    1e216, 1e217, 1e218, 1e219, 1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227,
    1e228, 1e229, 1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239,
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249, 1e250, 1e251,
    1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259, 1e260, 1e261, 1e262, 1e263,
    1e264, 1e265, 1e266, 1e267, 1e268, 1e269, 1e270, 1e271, 1e272, 1e273, 1e274, 1e275,
    1e276, 1e277, 1e278, 1e279, 1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287,
    1e288, 1e289, 1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299,
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
};

const char WEIR__ERR_EOF_VALUE[] = "EOF while parsing a value";
static const char ERR_INVALID_NUMBER[] = "invalid number";
static const char ERR_OUT_OF_RANGE[] = "number out of range";

/* serde_json's `overflow!(a * 10 + b, max)`. */
static inline bool overflows_u64(uint64_t a, unsigned b) {
    return a >= UINT64_MAX / 10 && (a > UINT64_MAX / 10 || b > UINT64_MAX % 10);
}

static const char *f64_from_parts(bool positive, uint64_t sig, int32_t exponent, jnum *out) {
    double f = (double)sig;
    for (;;) {
        int64_t a = exponent < 0 ? -(int64_t)exponent : exponent;
        if (a <= 308) {
            if (exponent >= 0) {
                f *= POW10[a];
                if (isinf(f)) return ERR_OUT_OF_RANGE;
            } else {
                f /= POW10[a];
            }
            break;
        }
        if (f == 0.0) break;
        if (exponent >= 0) return ERR_OUT_OF_RANGE;
        f /= 1e308;
        exponent += 308;
    }
    out->kind = NUM_F64;
    out->f = positive ? f : -f;
    return NULL;
}

static const char *parse_exponent(numreader *r, bool positive, uint64_t sig, int32_t start,
                                  jnum *out) {
    r->p++; /* e or E */
    bool positive_exp = true;
    if (NPEEK(r) == '+') {
        r->p++;
    } else if (NPEEK(r) == '-') {
        r->p++;
        positive_exp = false;
    }
    if (r->p >= r->end) return WEIR__ERR_EOF_VALUE;
    uint8_t c = *r->p++;
    if (!IS_DIGIT(c)) return ERR_INVALID_NUMBER;
    int32_t exp = c - '0';
    while (IS_DIGIT(NPEEK(r))) {
        int32_t d = *r->p++ - '0';
        if (exp >= INT32_MAX / 10 && (exp > INT32_MAX / 10 || d > INT32_MAX % 10)) {
            /* serde_json: an error instead of infinity, else zero. */
            if (sig != 0 && positive_exp) return ERR_OUT_OF_RANGE;
            while (IS_DIGIT(NPEEK(r))) r->p++;
            out->kind = NUM_F64;
            out->f = positive ? 0.0 : -0.0;
            return NULL;
        }
        exp = exp * 10 + d;
    }
    int64_t final = positive_exp ? (int64_t)start + exp : (int64_t)start - exp;
    if (final > INT32_MAX) final = INT32_MAX;
    if (final < INT32_MIN) final = INT32_MIN;
    return f64_from_parts(positive, sig, (int32_t)final, out);
}

static const char *parse_decimal(numreader *r, bool positive, uint64_t sig, int32_t before,
                                 jnum *out) {
    r->p++; /* '.' */
    int32_t after = 0;
    while (IS_DIGIT(NPEEK(r))) {
        unsigned d = *r->p - '0';
        if (overflows_u64(sig, d)) {
            /* Further digits are ignored. */
            while (IS_DIGIT(NPEEK(r))) r->p++;
            if (NPEEK(r) == 'e' || NPEEK(r) == 'E')
                return parse_exponent(r, positive, sig, before + after, out);
            return f64_from_parts(positive, sig, before + after, out);
        }
        r->p++;
        sig = sig * 10 + d;
        after--;
    }
    if (after == 0) return r->p < r->end ? ERR_INVALID_NUMBER : WEIR__ERR_EOF_VALUE;
    if (NPEEK(r) == 'e' || NPEEK(r) == 'E') return parse_exponent(r, positive, sig, before + after, out);
    return f64_from_parts(positive, sig, before + after, out);
}

/* Reads the number at r->p (a '-' or a digit); on success r->p is after it. */
const char *weir__parse_number(numreader *r, jnum *out) {
    bool positive = true;
    if (NPEEK(r) == '-') {
        r->p++;
        positive = false;
    }
    if (r->p >= r->end) return WEIR__ERR_EOF_VALUE;
    uint8_t c = *r->p++;
    uint64_t sig;
    if (c == '0') {
        if (IS_DIGIT(NPEEK(r))) return ERR_INVALID_NUMBER;
        sig = 0;
    } else if (c >= '1' && c <= '9') {
        sig = c - '0';
        while (IS_DIGIT(NPEEK(r))) {
            unsigned d = *r->p - '0';
            if (overflows_u64(sig, d)) {
                /* A long integer: the remaining digits only scale it. */
                int32_t exponent = 0;
                while (IS_DIGIT(NPEEK(r))) {
                    r->p++;
                    if (exponent < INT32_MAX) exponent++;
                }
                if (NPEEK(r) == '.') return parse_decimal(r, positive, sig, exponent, out);
                if (NPEEK(r) == 'e' || NPEEK(r) == 'E')
                    return parse_exponent(r, positive, sig, exponent, out);
                return f64_from_parts(positive, sig, exponent, out);
            }
            r->p++;
            sig = sig * 10 + d;
        }
    } else {
        return ERR_INVALID_NUMBER;
    }
    if (NPEEK(r) == '.') return parse_decimal(r, positive, sig, 0, out);
    if (NPEEK(r) == 'e' || NPEEK(r) == 'E') return parse_exponent(r, positive, sig, 0, out);
    if (positive) {
        out->kind = NUM_U64;
        out->u = sig;
    } else {
        /* serde_json: `(sig as i64).wrapping_neg()`, a float when that is >= 0 (`-0`, or a
         * magnitude beyond 2^63). */
        uint64_t neg = 0 - sig;
        if (neg <= (uint64_t)INT64_MAX) {
            out->kind = NUM_F64;
            out->f = -(double)sig;
        } else {
            out->kind = NUM_I64;
            out->i = sig == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)sig;
        }
    }
    return NULL;
}
