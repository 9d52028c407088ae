/* weir_aggregate.c — the loops the aggregate glue calls: create, add (packed accumulators),
 * merge (packed accumulators in groups), finish (packed windows and results) and migrate, with
 * every accumulator checked. */
#include "weir_impl.h"


/* =============================================================================================
 * Aggregates
 * ============================================================================================= */

/* The packed results of one `finish` call, filled window by window. The payload handed out by
 * weir_result_add is written into `pending` (a fresh, empty buffer for the callback, whatever it
 * does with it) and copied into `payloads` by the next weir_result_add / weir_result_push or at
 * the end of the window: one copy per payload, no allocation per payload. */
struct weir_results {
    weir_buf payloads, payload_ends, origins;
    weir_buf pending;
    bool open;       /* `pending` holds a payload handed out by weir_result_add */
    bool failed;     /* out of memory, or payloads beyond 4 GiB */
    uint32_t origin; /* index of the window being finished */
};

/* Ends the payload that now ends `payloads` (origin: the current window). */
static void result_close_item(weir_results *r) {
    if (r->payloads.len > UINT32_MAX) r->failed = true;
    buf_put_u32(&r->payload_ends, (uint32_t)r->payloads.len);
    buf_put_u32(&r->origins, r->origin);
}

/* Moves the payload handed out by weir_result_add, if any, into the packed payloads. */
static void result_flush(weir_results *r) {
    if (!r->open) return;
    r->open = false;
    if (r->pending.failed ||
        weir_buf_append(&r->payloads, r->pending.ptr, r->pending.len) != WEIR_OK)
        r->failed = true;
    result_close_item(r);
}

static bool results_failed(const weir_results *r) {
    return r->failed || r->payloads.failed || r->payload_ends.failed || r->origins.failed;
}

weir_buf *weir_result_add(weir_results *r) {
    if (r == NULL) return NULL;
    result_flush(r);
    if (results_failed(r)) return NULL;
    weir_buf_clear(&r->pending);
    r->open = true;
    return &r->pending;
}

int weir_result_push(weir_results *r, const void *data, size_t len) {
    if (r == NULL) return WEIR_ERR;
    /* `data` may point into `pending`: flushing copies it out but leaves its bytes in place. */
    result_flush(r);
    if (results_failed(r)) return WEIR_ERR;
    if (weir_buf_append(&r->payloads, data, len) != WEIR_OK) {
        r->failed = true;
        return WEIR_ERR;
    }
    result_close_item(r);
    return results_failed(r) ? WEIR_ERR : WEIR_OK;
}

static void results_free(weir_results *r) {
    weir_buf_free(&r->payloads);
    weir_buf_free(&r->payload_ends);
    weir_buf_free(&r->origins);
    weir_buf_free(&r->pending);
}

/* Checks a packed list (`what`'s data with the u32 end offsets `ends_name`): offsets in order
 * and within the data. */
static int packed_check(const char *what, const char *ends_name, weir_bytes data, weir_bytes ends,
                        weir_error *e) {
    if (ends.len % 4 != 0)
        return weir_fail(e, "malformed %s: `%s` is not a u32 list", what, ends_name);
    uint32_t prev = 0;
    for (size_t i = 0; i < ends.len / 4; i++) {
        uint32_t end = le32(ends.ptr + 4 * i);
        if (end < prev || end > data.len)
            return weir_fail(e, "malformed %s: end offset %zu is out of order or bounds", what, i);
        prev = end;
    }
    return WEIR_OK;
}

/* Fills `acc` (empty) with a new accumulator. */
static int acc_create(const weir_aggregate *a, weir_buf *acc, weir_error *e) {
    if (a->create != NULL) {
        if (a->create(acc, e) != WEIR_OK) return WEIR_ERR;
    } else if (a->acc_size > 0) {
        if (weir_buf_reserve(acc, a->acc_size) == WEIR_OK) {
            memset(acc->ptr, 0, a->acc_size);
            acc->len = a->acc_size;
        }
    }
    if (acc->failed) return weir_fail(e, "out of memory creating an accumulator");
    if (a->acc_size > 0 && acc->len != a->acc_size)
        return weir_fail(e, "`create` made an accumulator of %zu bytes, expected %zu", acc->len,
                         a->acc_size);
    return WEIR_OK;
}

/* Loads stored accumulator bytes into `acc` (empty): a new accumulator when empty (as the Rust
 * SDK), a size check for fixed-size accumulators. */
static int acc_load(const weir_aggregate *a, weir_bytes stored, weir_buf *acc, weir_error *e) {
    if (stored.len == 0) return acc_create(a, acc, e);
    if (a->acc_size > 0 && stored.len != a->acc_size)
        return weir_fail(e, "cannot decode accumulator: it has %zu bytes, expected %zu (changing "
                            "the accumulator needs a new state_version and a migrate)",
                         stored.len, a->acc_size);
    /* The copy is malloc'd, hence aligned for any type (WEIR_ACC casts it). */
    if (weir_buf_append_bytes(acc, stored) != WEIR_OK)
        return weir_fail(e, "out of memory loading an accumulator");
    return WEIR_OK;
}

/* Checks an accumulator a callback returned. */
static int acc_check(const weir_aggregate *a, const weir_buf *acc, const char *what,
                     weir_error *e) {
    if (acc->failed) return weir_fail(e, "out of memory in `%s`", what);
    if (a->acc_size > 0 && acc->len != a->acc_size)
        return weir_fail(e, "`%s` left an accumulator of %zu bytes, expected %zu", what,
                         acc->len, a->acc_size);
    return WEIR_OK;
}

bool weir__agg_configure(const weir_aggregate *a, const uint8_t *config, size_t len,
                         weir__list *err) {
    return weir__configure(a->configure, config, len, err);
}

bool weir__agg_create(const weir_aggregate *a, weir__list *ret, weir__list *err) {
    weir_error e = {0};
    weir_buf acc = {0};
    if (acc_create(a, &acc, &e) != WEIR_OK) {
        weir_buf_free(&acc);
        *err = weir__message_list(&e, "`create` failed");
        return false;
    }
    *ret = weir__list_from_buf(&acc);
    return true;
}

bool weir__agg_add(const weir_aggregate *a, weir_bytes data, weir_bytes ends, weir_bytes targets,
                   const weir_columns *cols, weir__list *ret_data, weir__list *ret_ends,
                   uint32_t *err_index, weir__list *err) {
    weir_error e = {0};
    weir_batch in;
    weir_buf *slots = NULL; /* accumulator i, loaded when slots[i].ptr or loaded[i] */
    uint8_t *loaded = NULL;
    size_t n = ends.len / 4;
    *err_index = 0;
    if (!weir__configured) {
        weir_fail(&e, "%s", WEIR__NOT_CONFIGURED);
        goto fail;
    }
    if (weir_batch_open(&in, cols, &e) != WEIR_OK) goto fail;
    if (a->add == NULL) {
        weir_fail(&e, "the aggregate has no `add`");
        goto fail;
    }
    if (packed_check("accumulators", "ends", data, ends, &e) != WEIR_OK) goto fail;
    if (n > 0) {
        slots = (weir_buf *)calloc(n, sizeof *slots);
        loaded = (uint8_t *)calloc(n, 1);
        if (slots == NULL || loaded == NULL) {
            weir_fail(&e, "out of memory");
            goto fail;
        }
    }
    uint32_t events = (uint32_t)(targets.len / 4 < in.len ? targets.len / 4 : in.len);
    for (uint32_t i = 0; i < events; i++) {
        uint32_t t = le32(targets.ptr + 4 * (size_t)i);
        *err_index = i;
        if (t >= n) {
            weir_fail(&e, "target %u is not an accumulator index", t);
            goto fail;
        }
        if (!loaded[t]) {
            if (acc_load(a, column_item(data, ends, t), &slots[t], &e) != WEIR_OK) goto fail;
            loaded[t] = 1;
        }
        weir_event ev = weir_batch_get(&in, i);
        if (a->add(&slots[t], &ev, &e) != WEIR_OK || acc_check(a, &slots[t], "add", &e) != WEIR_OK)
            goto fail;
    }
    *err_index = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += loaded[i] ? slots[i].len : column_item(data, ends, (uint32_t)i).len;
    if (total > UINT32_MAX) {
        weir_fail(&e, "accumulators exceed 4 GiB");
        goto fail;
    }
    weir_buf out_data = {0}, out_ends = {0};
    weir_buf_reserve(&out_data, total);
    weir_buf_reserve(&out_ends, 4 * n);
    for (size_t i = 0; i < n; i++) {
        if (loaded[i])
            weir_buf_append(&out_data, slots[i].ptr, slots[i].len);
        else
            weir_buf_append_bytes(&out_data, column_item(data, ends, (uint32_t)i));
        buf_put_u32(&out_ends, (uint32_t)out_data.len);
    }
    for (size_t i = 0; i < n; i++) weir_buf_free(&slots[i]);
    free(slots);
    free(loaded);
    if (out_data.failed || out_ends.failed) {
        weir_buf_free(&out_data);
        weir_buf_free(&out_ends);
        weir_fail(&e, "out of memory writing the accumulators");
        *err = weir__message_list(&e, "out of memory");
        return false;
    }
    *ret_data = weir__list_from_buf(&out_data);
    *ret_ends = weir__list_from_buf(&out_ends);
    return true;
fail:
    if (slots != NULL)
        for (size_t i = 0; i < n; i++) weir_buf_free(&slots[i]);
    free(slots);
    free(loaded);
    *err = weir__message_list(&e, "`add` failed (no message given)");
    return false;
}

/* Fails naming what is wrong with group `g` of a `merge` call, which starts at accumulator
 * `start` (where the group before it ends) and ends at `end` (of `count`). */
static int group_fail(weir_error *e, size_t g, uint32_t start, uint32_t end, size_t count) {
    if (end > count)
        return weir_fail(e, "malformed groups: group %zu ends at accumulator %u, but the call has "
                            "%zu accumulators",
                         g, end, count);
    if (end == start)
        return weir_fail(e, "malformed groups: group %zu is empty (it starts and ends at "
                            "accumulator %u)",
                         g, end);
    return weir_fail(e, "malformed groups: group %zu ends at accumulator %u, before it starts "
                        "(%u): group ends must increase",
                     g, end, start);
}

/* One `merge` call: every merge due together. Group `g` is accumulators `end(g-1) .. end(g)`
 * (`groups`: one u32 end per group), folded left to right (time order) into the first with the
 * user's pairwise `merge`; one accumulator per group comes back, in group order. Each
 * accumulator is loaded once and `acc`/`other` are reused from merge to merge; a group of one is
 * its accumulator, copied as stored. A failing or malformed group stops the call with its index
 * (the host calls again without it); problems of the call as a whole name group 0. */
bool weir__agg_merge(const weir_aggregate *a, weir_bytes data, weir_bytes ends, weir_bytes groups,
                     weir__list *ret_data, weir__list *ret_ends, uint32_t *err_index,
                     weir__list *err) {
    weir_error e = {0};
    weir_buf acc = {0}, other = {0};
    weir_buf out_data = {0}, out_ends = {0};
    *err_index = 0;
    if (!weir__configured) {
        weir_fail(&e, "%s", WEIR__NOT_CONFIGURED);
        goto fail;
    }
    if (a->merge == NULL) {
        weir_fail(&e, "the aggregate has no `merge`");
        goto fail;
    }
    if (packed_check("accumulators", "ends", data, ends, &e) != WEIR_OK) goto fail;
    if (groups.len % 4 != 0) {
        weir_fail(&e, "malformed groups: %zu bytes, not a whole number of u32 ends", groups.len);
        goto fail;
    }
    size_t n = groups.len / 4, count = ends.len / 4;
    weir_buf_reserve(&out_ends, 4 * n);
    /* Enough for the results unless free-form accumulators grow when merged. */
    weir_buf_reserve(&out_data, data.len);
    uint32_t start = 0;
    /* Group ends increase from 1, so a failing group's index still fits the u32 it is sent as. */
    for (size_t g = 0; g < n; g++) {
        uint32_t end = le32(groups.ptr + 4 * g);
        *err_index = (uint32_t)g;
        if (end <= start || end > count) {
            group_fail(&e, g, start, end, count);
            goto fail;
        }
        if (end - start == 1) {
            weir_buf_append_bytes(&out_data, column_item(data, ends, start));
        } else {
            weir_buf_clear(&acc);
            if (acc_load(a, column_item(data, ends, start), &acc, &e) != WEIR_OK) goto fail;
            for (uint32_t i = start + 1; i < end; i++) {
                weir_buf_clear(&other);
                if (acc_load(a, column_item(data, ends, i), &other, &e) != WEIR_OK ||
                    a->merge(&acc, &other, &e) != WEIR_OK ||
                    acc_check(a, &acc, "merge", &e) != WEIR_OK)
                    goto fail;
            }
            weir_buf_append(&out_data, acc.ptr, acc.len);
        }
        if (out_data.len > UINT32_MAX) {
            weir_fail(&e, "merged accumulators exceed 4 GiB");
            goto fail;
        }
        buf_put_u32(&out_ends, (uint32_t)out_data.len);
        start = end;
    }
    *err_index = 0;
    if (out_data.failed || out_ends.failed) {
        weir_fail(&e, "out of memory writing the merged accumulators");
        goto fail;
    }
    weir_buf_free(&acc);
    weir_buf_free(&other);
    *ret_data = weir__list_from_buf(&out_data);
    *ret_ends = weir__list_from_buf(&out_ends);
    return true;
fail:
    weir_buf_free(&acc);
    weir_buf_free(&other);
    weir_buf_free(&out_data);
    weir_buf_free(&out_ends);
    *err = weir__message_list(&e, "`merge` failed (no message given)");
    return false;
}

/* One `finish` call: every window that fires, each with its key, bounds and accumulator; the
 * user's `finish` runs per window and its payloads are packed with that window's index as
 * origin. A failing window stops the call with its index (the host calls again without it);
 * problems of the call as a whole (not configured, malformed input) name window 0. */
bool weir__agg_finish(const weir_aggregate *a, weir_bytes keys, weir_bytes key_ends,
                      weir_bytes bounds, weir_bytes data, weir_bytes ends, weir__results_out *ret,
                      uint32_t *err_index, weir__list *err) {
    weir_error e = {0};
    weir_results r = {0};
    weir_buf acc = {0}; /* reused from window to window */
    *err_index = 0;
    if (!weir__configured) {
        weir_fail(&e, "%s", WEIR__NOT_CONFIGURED);
        goto fail;
    }
    if (a->finish == NULL) {
        weir_fail(&e, "the aggregate has no `finish`");
        goto fail;
    }
    if (packed_check("windows", "key-ends", keys, key_ends, &e) != WEIR_OK ||
        packed_check("accumulators", "ends", data, ends, &e) != WEIR_OK)
        goto fail;
    size_t n = key_ends.len / 4;
    if (ends.len / 4 != n || bounds.len / 16 != n || bounds.len % 16 != 0 || n > UINT32_MAX) {
        weir_fail(&e, "%zu windows came with %zu accumulators and %zu bytes of bounds", n,
                  ends.len / 4, bounds.len);
        goto fail;
    }
    /* Usually one payload per window. */
    weir_buf_reserve(&r.payload_ends, 4 * n);
    weir_buf_reserve(&r.origins, 4 * n);
    for (uint32_t i = 0; i < n; i++) {
        weir_window w = {le64(bounds.ptr + 16 * (size_t)i), le64(bounds.ptr + 16 * (size_t)i + 8)};
        *err_index = i;
        r.origin = i;
        weir_buf_clear(&acc);
        if (acc_load(a, column_item(data, ends, i), &acc, &e) != WEIR_OK ||
            a->finish(column_item(keys, key_ends, i), w, &acc, &r, &e) != WEIR_OK)
            goto fail;
        result_flush(&r);
        if (results_failed(&r)) {
            weir_fail(&e, "out of memory writing the result of `finish`");
            goto fail;
        }
    }
    weir_buf_free(&acc);
    weir_buf_free(&r.pending);
    ret->payloads = weir__list_from_buf(&r.payloads);
    ret->payload_ends = weir__list_from_buf(&r.payload_ends);
    ret->origins = weir__list_from_buf(&r.origins);
    return true;
fail:
    weir_buf_free(&acc);
    results_free(&r);
    *err = weir__message_list(&e, "`finish` failed (no message given)");
    return false;
}

bool weir__agg_migrate(const weir_aggregate *a, uint32_t from, weir_bytes stored, weir__list *ret,
                       weir__list *err) {
    weir_error e = {0};
    weir_buf acc = {0};
    if (!weir__configured) {
        weir_fail(&e, "%s", WEIR__NOT_CONFIGURED);
    } else if (from == a->state_version) {
        if (weir_buf_append_bytes(&acc, stored) == WEIR_OK) {
            *ret = weir__list_from_buf(&acc);
            return true;
        }
        weir_fail(&e, "out of memory");
    } else if (a->migrate == NULL) {
        weir_fail(&e, "cannot migrate accumulators from state version %u to %u", from,
                  a->state_version);
    } else if (a->migrate(from, stored, &acc, &e) == WEIR_OK &&
               acc_check(a, &acc, "migrate", &e) == WEIR_OK) {
        *ret = weir__list_from_buf(&acc);
        return true;
    }
    weir_buf_free(&acc);
    *err = weir__message_list(&e, "`migrate` failed (no message given)");
    return false;
}
