// Engine feature area: ZEGO features Huddle does not offer — paid add-ons of ZEGO's cloud
// (AI noise suppression, voice changer, reverb, beauty, background processing, copyrighted
// music, range audio, CDN relay, SEI, mixing, …). Their methods exist so that a page written for ZEGO does not crash on
// them; each answers in the shape ZEGO declares for it, saying "not offered" (code 7011,
// NOT_OFFERED), and the first call of each feature logs a warning naming it (per engine; a
// static method once per page). Also ZEGO's cloud-only settings (geofencing, proxies, plugin
// modules), which a self-hosted server has no use for. One table,
// below; the README lists it and sdk/huddle-express.d.ts tags each method `@zegoUnsupported`.

import { SdkError } from "./constants.js";
import { sdkError } from "./errors.js";

/** How a method answers, after ZEGO's declared return type. */
export const NotOffered = Object.freeze({
  /** `Promise<ZegoServerResponse>`: resolves `{errorCode: 7011, extendedData}`. */
  RESPONSE: "response",
  /** `Promise<boolean>`: resolves false. */
  RESOLVE_FALSE: "resolveFalse",
  /** `boolean`: false. */
  FALSE: "false",
  /** `void`: nothing. */
  NOTHING: "nothing",
  /** `Promise<T>` of a value Huddle cannot give: rejects with a NOT_OFFERED error. */
  REJECT: "reject",
  /** A factory of an add-on's object: throws a NOT_OFFERED error (there is no object to give). */
  THROW: "throw",
});

const N = NotOffered;
const ADD_ON_WHY = "a paid add-on of ZEGO's cloud that Huddle does not provide";
const SELF_HOSTED_WHY = "Huddle is self-hosted: there is no ZEGO cloud to route, fence or proxy";

/** feature → why, and its methods with how each answers. */
export const NOT_OFFERED_FEATURES = Object.freeze([
  { feature: "AI noise suppression", why: ADD_ON_WHY, methods: { enableAiDenoise: N.RESPONSE, setAiDenoiseMode: N.RESPONSE } },
  {
    feature: "voice changer",
    why: ADD_ON_WHY,
    methods: { setVoiceChangerPreset: N.RESPONSE, setVoiceChangerParam: N.RESPONSE, enableLiveAudioEffect: N.RESPONSE, setAudioChangerParam: N.RESPONSE },
  },
  { feature: "reverb and virtual stereo", why: ADD_ON_WHY, methods: { setReverbPreset: N.RESPONSE, enableVirtualStereo: N.RESPONSE } },
  { feature: "beauty effects", why: ADD_ON_WHY, methods: { setEffectsBeauty: N.RESPONSE, setLowlightEnhancement: N.RESPONSE } },
  {
    feature: "background processing",
    why: ADD_ON_WHY,
    methods: {
      initBackgroundModule: N.RESPONSE,
      enableBackgroundProcess: N.RESPONSE,
      setBackgroundBlurOptions: N.RESOLVE_FALSE,
      setVirtualBackgroundOptions: N.RESOLVE_FALSE,
      setTransparentBackgroundOptions: N.RESOLVE_FALSE,
    },
  },
  { feature: "copyrighted music", why: ADD_ON_WHY, methods: { createCopyrightedMusic: N.THROW, destroyCopyrightedMusic: N.NOTHING } },
  { feature: "range audio", why: ADD_ON_WHY, methods: { createRangeAudioInstance: N.THROW } },
  {
    feature: "CDN relay",
    why: "Huddle delivers media over WebRTC only; it pushes nothing to a CDN",
    methods: { addPublishCdnUrl: N.RESPONSE, removePublishCdnUrl: N.RESPONSE },
  },
  { feature: "SEI", why: "Huddle's relay carries no SEI in the video it forwards", methods: { setSEIConfig: N.NOTHING, sendSEI: N.FALSE } },
  {
    feature: "stream mixing",
    why: "Huddle mixes no streams on the server",
    methods: {
      startMixerTask: N.RESPONSE,
      stopMixerTask: N.RESPONSE,
      setMixerTaskConfig: N.RESPONSE,
      startAutoMixerTask: N.RESPONSE,
      stopAutoMixerTask: N.RESPONSE,
      setStreamAlignmentProperty: N.RESOLVE_FALSE,
    },
  },
  { feature: "audio mixing into a published stream", why: ADD_ON_WHY, methods: { startMixingAudio: N.FALSE, stopMixingAudio: N.FALSE, setMixingAudioVolume: N.FALSE } },
  {
    feature: "audio effect player",
    why: ADD_ON_WHY,
    methods: { createAudioEffectPlayer: N.THROW, loadAudioEffect: N.REJECT, unloadAudioEffect: N.FALSE },
  },
  {
    feature: "real-time sequential data",
    why: ADD_ON_WHY,
    methods: { createRealTimeSequentialDataManager: N.THROW, destroyRealTimeSequentialDataManager: N.NOTHING },
  },
  { feature: "stream compositor", why: ADD_ON_WHY, methods: { createStreamCompositor: N.THROW } },
  { feature: "log upload", why: "Huddle's SDK logs to the console only", methods: { uploadLog: N.RESPONSE } },
  { feature: "ZEGO plugin modules", why: "ZEGO's plugin modules are its paid add-ons; Huddle's SDK has every offered feature built in", statics: { use: N.NOTHING } },
  {
    feature: "ZEGO cloud routing",
    why: SELF_HOSTED_WHY,
    statics: { setGeoFence: N.NOTHING, setEngineOptions: N.NOTHING, setCloudProxyConfig: N.NOTHING, setLocalProxyConfig: N.NOTHING },
  },
  { feature: "Electron screen sources", why: "Huddle's SDK runs in browsers, not Electron", methods: { getElectronScreenSources: N.REJECT } },
  {
    feature: "multiple rooms per engine",
    why: "a Huddle engine is in one room at a time (create another engine for another room)",
    methods: { enableMultiRoom: N.FALSE },
  },
  {
    feature: "transparent messages",
    why: "Huddle's server stores and forwards no binary messages; use sendCustomCommand",
    methods: { sendTransparentMessage: N.RESPONSE },
  },
  { feature: "experimental APIs", why: "ZEGO's experimental APIs are private to ZEGO's cloud", methods: { callExperimentalAPI: N.REJECT } },
  {
    feature: "placeholder images while the camera is off",
    why: "Huddle sends no video while the camera is off (enableVideoCaptureDevice(false))",
    methods: { setDummyCaptureImagePath: N.RESOLVE_FALSE },
  },
]);

/** The answer of one not-offered method, as ZEGO shapes it. */
export function notOfferedAnswer(answer, method, feature) {
  const message = `${method}: Huddle does not offer ${feature}`;
  switch (answer) {
    case N.RESPONSE:
      return Promise.resolve({ errorCode: SdkError.NOT_OFFERED, extendedData: message });
    case N.RESOLVE_FALSE:
      return Promise.resolve(false);
    case N.FALSE:
      return false;
    case N.REJECT:
      return Promise.reject(sdkError(SdkError.NOT_OFFERED, message));
    case N.THROW:
      throw sdkError(SdkError.NOT_OFFERED, message);
    default:
      return undefined;
  }
}

/** The engine's not-offered methods, made from the table. */
export class NotOfferedFeature {}

/** Features whose static method has logged its warning (statics have no engine logger). */
const staticsWarned = new Set();

/** Puts the table's static methods on the engine class (`addEngineFeature` copies only the prototype). */
export function addNotOfferedStatics(engineClass, logger = { warn: (...args) => console.warn("[huddle]", ...args) }) {
  for (const { feature, why, statics } of NOT_OFFERED_FEATURES) {
    for (const [method, answer] of Object.entries(statics || {})) {
      Object.defineProperty(engineClass, method, {
        configurable: true,
        writable: true,
        value: function () {
          if (!staticsWarned.has(feature)) {
            staticsWarned.add(feature);
            logger.warn(`${method}: Huddle does not offer ${feature} (${why}).`);
          }
          return notOfferedAnswer(answer, method, feature);
        },
      });
    }
  }
}

for (const { feature, why, methods } of NOT_OFFERED_FEATURES) {
  for (const [method, answer] of Object.entries(methods || {})) {
    Object.defineProperty(NotOfferedFeature.prototype, method, {
      configurable: true,
      writable: true,
      value: function () {
        this._logger.warnOnce(`not-offered:${feature}`, `${method}: Huddle does not offer ${feature} (${why}).`);
        return notOfferedAnswer(answer, method, feature);
      },
    });
  }
}
