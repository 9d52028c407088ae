// `forward`: every event out unchanged — measures the JavaScript SDK's per-event cost.
import { transform } from "weir";

export default transform((event) => event);
