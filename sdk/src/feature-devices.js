// Engine feature area: browser capabilities and device lists.

import { checkSystemRequirements, enumDevices } from "./devices.js";

export class DevicesFeature {
  /**
   * Detects what this browser supports: WebRTC, capture from a MediaStream, camera and
   * microphone presence, video codecs the browser can send, screen sharing.
   * @param {'webRTC'|'customCapture'|'camera'|'microphone'|'screenSharing'|'videoCodec'|'H264'|'H265'|'VP8'|'VP9'} [checkType] only this one (a codec: only that codec)
   * @param {0|1} [checkLevel] codecs: 0 (default) the browser's capabilities, 1 a real offer (slower)
   * @returns {Promise<{webRTC?: boolean, customCapture?: boolean, camera?: boolean, microphone?: boolean, videoCodec?: {H264: boolean, H265: boolean, VP8: boolean, VP9: boolean}, screenSharing?: boolean, errInfo: object, result: boolean}>}
   */
  checkSystemRequirements(checkType, checkLevel) {
    return checkSystemRequirements(checkType, checkLevel);
  }

  /**
   * Lists cameras, microphones and speakers.
   * @returns {Promise<{cameras: Array<{deviceID: string, deviceName: string}>, microphones: Array<{deviceID: string, deviceName: string}>, speakers: Array<{deviceID: string, deviceName: string}>}>}
   */
  enumDevices() {
    return enumDevices();
  }

  /** @returns {Promise<Array<{deviceID: string, deviceName: string}>>} */
  async getCameras() {
    return (await this.enumDevices()).cameras;
  }

  /** @returns {Promise<Array<{deviceID: string, deviceName: string}>>} */
  async getMicrophones() {
    return (await this.enumDevices()).microphones;
  }

  /** @returns {Promise<Array<{deviceID: string, deviceName: string}>>} */
  async getSpeakers() {
    return (await this.enumDevices()).speakers;
  }
}
