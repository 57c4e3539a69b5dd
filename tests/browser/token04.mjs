// Mints ZEGO "04" tokens the way ZEGO's published server-side generators
// (zego_server_assistant, token04) lay them out, so that tests can log in to Huddle with the
// tokens a business's existing ZEGO token server hands out.
//
// Layout, all integers big-endian, the whole thing base64 (standard alphabet, padded) behind
// the literal prefix "04":
//
//   expire      8 bytes, signed: unix seconds (a copy of the encrypted `expire`)
//   nonceLength 2 bytes          then the nonce/IV itself
//   dataLength  2 bytes          then the encrypted data
//   mode        1 byte, GCM only: 1 = AES-GCM (absent in the older AES-CBC layout)
//
// GCM: key = the 32-character ServerSecret as bytes (AES-256), a 12-byte nonce, no associated
// data, the 16-byte tag appended to the ciphertext. CBC (deprecated by ZEGO, still accepted):
// the same key, a 16-character IV, PKCS#7 padding, no authentication.
// The plaintext is JSON: {app_id, user_id, nonce, ctime, expire, payload}, where `payload` is
// a string: empty for ZEGO's basic ("user identity") token, or the JSON of
// {room_id, privilege: {1: login, 2: publish}, stream_id_list} for a privilege token.
//
// Given the same time, nonce and IV it reproduces ZEGO's own generators byte for byte: the
// known-answer vectors in src/auth/token04_tests.rs (made with ZEGO's Node CBC and Python GCM
// generators) all come out identical. Written for Huddle's tests; it copies no ZEGO code.
//
//   import { mintToken04 } from './token04.mjs';
//   const token = mintToken04({ appID, secret, userID: 'alice', roomID: 'room-1',
//     privilege: { login: true, publish: true }, streamIDList: ['alice-cam'] });
//   await engine.loginRoom('room-1', token, { userID: 'alice', userName: 'Alice' });

import { createCipheriv, randomBytes, randomInt } from 'node:crypto';

const IV_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

function randomIv(length) {
  let iv = '';
  for (let i = 0; i < length; i++) iv += IV_ALPHABET[randomInt(IV_ALPHABET.length)];
  return Buffer.from(iv, 'latin1');
}

/**
 * The payload string of a privilege token, or '' (a basic token) when none of roomID,
 * privilege and streamIDList is given.
 * @param {{roomID?: string, privilege?: {login?: boolean, publish?: boolean}, streamIDList?: string[] | null}} spec
 */
export function token04Payload({ roomID, privilege, streamIDList }) {
  if (roomID === undefined && privilege === undefined && streamIDList === undefined) return '';
  const bits = privilege ?? {};
  return JSON.stringify({
    room_id: roomID ?? '',
    privilege: { 1: bits.login ? 1 : 0, 2: bits.publish ? 1 : 0 },
    stream_id_list: streamIDList ?? null,
  });
}

/**
 * Mints a ZEGO "04" token.
 *
 * @param {object} options
 * @param {number} options.appID             the app's numeric id
 * @param {string} options.secret            the app's 32-character ServerSecret
 * @param {string} options.userID
 * @param {string} [options.roomID]          privilege token: the one room it opens ('' = any)
 * @param {{login?: boolean, publish?: boolean}} [options.privilege]  privilege token: bits 1 and 2
 * @param {string[] | null} [options.streamIDList]  privilege token: the streams it may publish
 * @param {number} [options.effectiveTimeInSeconds=3600]
 * @param {'gcm' | 'cbc'} [options.mode='gcm']
 * @param {string} [options.payload]         a raw payload string, instead of roomID/privilege/streamIDList
 * @param {number} [options.now]             creation time, unix seconds (default: the clock)
 * @param {Buffer} [options.iv]              the nonce (GCM, 12 bytes) or IV (CBC, 16 bytes); random by default
 * @param {number} [options.nonce]           the int32 `nonce` inside the plaintext; random by default
 * @returns {string}
 */
export function mintToken04({
  appID,
  secret,
  userID,
  roomID,
  privilege,
  streamIDList,
  effectiveTimeInSeconds = 3600,
  mode = 'gcm',
  payload,
  now,
  iv,
  nonce,
}) {
  if (!Number.isInteger(appID) || appID <= 0 || appID > 0xffffffff) throw new Error('appID must be a positive u32');
  if (typeof userID !== 'string' || userID === '') throw new Error('userID must be a non-empty string');
  if (typeof secret !== 'string' || Buffer.byteLength(secret) !== 32) throw new Error('secret must be 32 bytes');
  if (!(effectiveTimeInSeconds > 0)) throw new Error('effectiveTimeInSeconds must be positive');
  if (mode !== 'gcm' && mode !== 'cbc') throw new Error(`mode must be 'gcm' or 'cbc', got ${mode}`);

  const ctime = now ?? Math.floor(Date.now() / 1000);
  const info = {
    app_id: appID,
    user_id: userID,
    nonce: nonce ?? randomInt(-2147483648, 2147483647),
    ctime,
    expire: ctime + effectiveTimeInSeconds,
    payload: payload ?? token04Payload({ roomID, privilege, streamIDList }),
  };
  const plaintext = Buffer.from(JSON.stringify(info), 'utf8');
  const key = Buffer.from(secret, 'utf8');

  let ivBytes;
  let data;
  if (mode === 'gcm') {
    ivBytes = iv ?? randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, ivBytes);
    data = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  } else {
    ivBytes = iv ?? randomIv(16);
    const cipher = createCipheriv('aes-256-cbc', key, ivBytes);
    data = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  }

  const head = Buffer.alloc(10);
  head.writeBigInt64BE(BigInt(info.expire), 0);
  head.writeUInt16BE(ivBytes.length, 8);
  const dataLength = Buffer.alloc(2);
  dataLength.writeUInt16BE(data.length, 0);
  const parts = [head, ivBytes, dataLength, data];
  if (mode === 'gcm') parts.push(Buffer.from([1]));
  return '04' + Buffer.concat(parts).toString('base64');
}
