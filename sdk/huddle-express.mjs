// ES module entry: loads the classic script (which defines the engine on globalThis) and
// re-exports what it defines, so `import { ZegoExpressEngine } from ".../huddle-express.mjs"`
// and the classic `<script>` tag share one implementation.
import "./huddle-express.js";

export const HuddleExpressEngine = globalThis.HuddleExpressEngine;
export const ZegoExpressEngine = globalThis.ZegoExpressEngine;
export const ZegoStreamView = HuddleExpressEngine.ZegoStreamView;
export const ZegoLocalStream = HuddleExpressEngine.ZegoLocalStream;
export const ZegoStreamUpdateType = HuddleExpressEngine.ZegoStreamUpdateType;
export const SdkError = HuddleExpressEngine.SdkError;
export default HuddleExpressEngine;
