// What failures mean: closed connections, failed resumes and logins, kick-outs, and the
// shapes errors take.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SdkError, ServerError, CloseCode, RoomState } from '../src/constants.js';
import {
  sdkError, serverError, captureError, failureResponse, closeOutcome, resumeFailure,
  isFinalLoginError, isTransientSignalingError, isLogoutRaceError, kickoutError,
} from '../src/errors.js';

describe('error values', () => {
  test('SDK errors carry ZEGO\'s code and msg', () => {
    const e = sdkError(SdkError.TIMEOUT, 'late', { name: 'x' });
    assert.ok(e instanceof Error);
    assert.deepEqual([e.code, e.msg, e.message, e.name], [7006, 'late', 'late', 'x']);
  });

  test('a server error without a code is an internal error', () => {
    assert.deepEqual([serverError({ code: 5010, message: 'gone' }).code, serverError({ code: 5010, message: 'gone' }).msg], [5010, 'gone']);
    assert.equal(serverError(undefined).code, ServerError.INTERNAL);
    assert.equal(serverError({}).msg, 'server error');
  });

  test('capture failures become CAPTURE_FAILED with the browser\'s error name; SDK errors pass', () => {
    const denied = Object.assign(new Error('Permission denied'), { name: 'NotAllowedError' });
    const e = captureError(denied);
    assert.equal(e.code, SdkError.CAPTURE_FAILED);
    assert.equal(e.name, 'NotAllowedError');
    const own = sdkError(SdkError.UNSUPPORTED, 'no');
    assert.equal(captureError(own), own);
  });

  test('room requests resolve a failure response', () => {
    assert.deepEqual(failureResponse(sdkError(5020, 'wrong room')), { errorCode: 5020, extendedData: 'wrong room' });
    assert.equal(failureResponse(new Error('x')).errorCode, ServerError.INTERNAL);
  });
});

describe('closed connections', () => {
  test('a dropped connection is reconnected', () => {
    assert.deepEqual(closeOutcome({ code: CloseCode.ABNORMAL, reason: '' }), { reconnect: true });
    assert.deepEqual(closeOutcome({ code: CloseCode.CLIENT_DROP, reason: 'heartbeat' }), { reconnect: true });
  });

  test('a kick-out ends the session with the kickout event\'s code, or 5009', () => {
    assert.deepEqual(closeOutcome({ code: CloseCode.KICKED_OUT, reason: 'dup' }), { end: RoomState.KICKOUT, errorCode: ServerError.KICKED_OUT, message: 'dup' });
    assert.deepEqual(closeOutcome({ code: 4023, reason: 'r', kickedOut: { code: 5023, message: 'bye' } }), { end: RoomState.KICKOUT, errorCode: 5023, message: 'bye' });
  });

  test('token expiry and oversized frames end it with the server\'s last error', () => {
    assert.deepEqual(closeOutcome({ code: CloseCode.TOKEN_EXPIRED, reason: 'expired' }), { end: RoomState.KICKOUT, errorCode: ServerError.TOKEN_EXPIRED, message: 'expired' });
    assert.deepEqual(closeOutcome({ code: CloseCode.MESSAGE_TOO_BIG, reason: '', lastError: { code: 3001, message: 'too big' } }), { end: RoomState.KICKOUT, errorCode: 3001, message: 'too big' });
    assert.deepEqual(closeOutcome({ code: CloseCode.NORMAL, reason: 'bye' }), { end: RoomState.KICKOUT, errorCode: 0, message: 'bye' });
  });

  test('a page that is being closed logs out', () => {
    assert.deepEqual(closeOutcome({ code: CloseCode.ABNORMAL, reason: '', leaving: true }), { end: RoomState.LOGOUT, errorCode: 0, message: 'page closed' });
  });
});

describe('resume and login failures', () => {
  test('resume: kicked out ends, expired token fails the reconnect, a lost session logs in again, else retry', () => {
    assert.deepEqual(resumeFailure({ code: ServerError.KICKED_OUT }), { end: RoomState.KICKOUT });
    assert.deepEqual(resumeFailure({ code: ServerError.TOKEN_EXPIRED }), { end: RoomState.RECONNECT_FAILED });
    assert.deepEqual(resumeFailure({ code: ServerError.SESSION_NOT_FOUND }), { relogin: true });
    assert.deepEqual(resumeFailure({ code: SdkError.TIMEOUT }), { retry: true });
    assert.deepEqual(resumeFailure({ code: ServerError.DRAINING }), { retry: true });
  });

  test('auth and token failures of a login again are final; others are retried', () => {
    assert.equal(isFinalLoginError({ code: 2001 }), true);
    assert.equal(isFinalLoginError({ code: ServerError.TOKEN_EXPIRED }), true);
    assert.equal(isFinalLoginError({ code: ServerError.DRAINING }), false);
    assert.equal(isFinalLoginError({ code: ServerError.KICKED_OUT }), false);
    assert.equal(isFinalLoginError({ code: SdkError.CONNECT_FAILED }), false);
  });

  test('transient signaling failures wait for the reconnect', () => {
    for (const code of [SdkError.CONNECT_FAILED, SdkError.NOT_LOGGED_IN, SdkError.TIMEOUT]) assert.equal(isTransientSignalingError({ code }), true);
    assert.equal(isTransientSignalingError({ code: SdkError.MEDIA_FAILED }), false);
    assert.equal(isTransientSignalingError(undefined), false);
  });

  test('a logout that races the close is not a failure', () => {
    assert.equal(isLogoutRaceError({ code: SdkError.CONNECT_FAILED }), true);
    assert.equal(isLogoutRaceError({ code: SdkError.CANCELLED }), true);
    assert.equal(isLogoutRaceError({ code: SdkError.TIMEOUT }), false);
  });

  test('kickout: the server\'s reason goes to extendedData as custom_kickout_message', () => {
    assert.deepEqual(kickoutError({ error: { code: 5023, message: 'removed' }, reason: 'spam' }), { code: 5023, message: '{"custom_kickout_message":"spam"}' });
    assert.deepEqual(kickoutError({ error: { code: 5009, message: 'elsewhere' } }), { code: 5009, message: 'elsewhere' });
    assert.deepEqual(kickoutError({}), { code: ServerError.KICKED_OUT, message: 'kicked out' });
  });
});
