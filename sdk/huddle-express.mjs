// ES module entry: loads the classic script, re-exports what it defines.
import "./huddle-express.js";
export const HuddleExpressEngine = globalThis.HuddleExpressEngine;
export const ZegoExpressEngine = globalThis.ZegoExpressEngine;
export default HuddleExpressEngine;
