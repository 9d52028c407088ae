// Runs the SDK suite with the runtime's own TextEncoder/TextDecoder (as under componentize-js).
// Run all SDK tests: node --test sdk/js/tests/
import * as weir from "../weir.js";
import { defineTests } from "./suite.mjs";

defineTests(weir, "native UTF-8");
