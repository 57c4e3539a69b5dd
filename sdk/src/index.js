// The SDK's entry: assembles the engine from its feature areas and defines the globals a
// classic `<script>` tag gives the page (`HuddleExpressEngine`, `ZegoExpressEngine`).
// scripts/build-sdk turns the modules into sdk/huddle-express.js, this file last.

import { SdkError, VERSION } from "./constants.js";
import { HuddleExpressEngine, addEngineFeature } from "./engine.js";
import { RoomFeature } from "./feature-room.js";
import { MessagesFeature } from "./feature-messages.js";
import { DevicesFeature } from "./feature-devices.js";
import { StreamsFeature } from "./feature-streams.js";
import { CaptureFeature } from "./feature-capture.js";
import { SoundLevelFeature } from "./feature-sound-level.js";
import { PublishMuteFeature } from "./feature-publish-mute.js";
import { PlayControlsFeature } from "./feature-play-controls.js";
import { SimulcastFeature } from "./feature-simulcast.js";
import { NetworkFeature } from "./feature-network.js";
import { SettingsFeature } from "./feature-settings.js";
import { AudioFramesFeature } from "./feature-audio-frames.js";
import { NotOfferedFeature, addNotOfferedStatics } from "./feature-unsupported.js";
import { ZegoStreamView } from "./view.js";
import { ZegoLocalStream } from "./local-stream.js";
import { ZegoStreamUpdateType } from "./stream-options.js";

// One feature area per module; a new area is one more line here.
addEngineFeature(RoomFeature);
addEngineFeature(MessagesFeature);
addEngineFeature(DevicesFeature);
addEngineFeature(StreamsFeature);
addEngineFeature(CaptureFeature);
addEngineFeature(SoundLevelFeature);
addEngineFeature(PublishMuteFeature);
addEngineFeature(PlayControlsFeature);
addEngineFeature(SimulcastFeature);
addEngineFeature(NetworkFeature);
addEngineFeature(SettingsFeature);
addEngineFeature(AudioFramesFeature);
addEngineFeature(NotOfferedFeature);
addNotOfferedStatics(HuddleExpressEngine);

HuddleExpressEngine.SdkError = SdkError;
HuddleExpressEngine.VERSION = VERSION;
HuddleExpressEngine.ZegoStreamView = ZegoStreamView;
HuddleExpressEngine.ZegoLocalStream = ZegoLocalStream;
HuddleExpressEngine.ZegoStreamUpdateType = ZegoStreamUpdateType;

globalThis.HuddleExpressEngine = HuddleExpressEngine;
globalThis.ZegoExpressEngine = HuddleExpressEngine;
if (typeof module === "object" && module && module.exports) {
  module.exports = {
    HuddleExpressEngine,
    ZegoExpressEngine: HuddleExpressEngine,
    ZegoStreamView,
    ZegoLocalStream,
    ZegoStreamUpdateType,
    SdkError,
    default: HuddleExpressEngine,
  };
}
