import { expect } from 'chai';
import sinon from 'sinon';
import { SbeError } from '../../daemon/errors';
import { createLogger } from '../../daemon/logger';
import { backoffDelay, withRetry } from '../../daemon/retry';
import { PassThrough } from 'node:stream';

const logger = createLogger({ stream: new PassThrough(), level: 'error' });
const policy = { attempts: 4, initialDelay: '1s', maxDelay: '3s' };

describe('daemon/retry', () => {
  it('backs off exponentially with full jitter, capped at maxDelay', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, 1000, 3000, () => 0.999999))).to.deep.equal([999, 1999, 2999, 2999, 2999]);
    expect(backoffDelay(3, 1000, 3000, () => 0)).to.equal(0);
    expect(backoffDelay(2, 1000, 60000, () => 0.5)).to.equal(1000);
  });

  it('retries transient failures and returns the first success', async () => {
    const sleep = sinon.stub().resolves();
    const attempt = sinon.stub();
    attempt.onCall(0).rejects(new SbeError('DELIVERY_FAILED', 'reset'));
    attempt.onCall(1).rejects(new Error('ECONNREFUSED'));
    attempt.onCall(2).resolves('ok');
    const result = await withRetry('delivering', policy, attempt, { logger, sleep, random: () => 0.5 });
    expect(result).to.equal('ok');
    expect(attempt.callCount).to.equal(3);
    expect(sleep.args.map((args) => args[0])).to.deep.equal([500, 1000]);
  });

  it('never retries a refusal', async () => {
    const sleep = sinon.stub().resolves();
    const attempt = sinon.stub().rejects(new SbeError('DELIVERY_REFUSED', 'host key mismatch'));
    const error = await withRetry('delivering', policy, attempt, { logger, sleep }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(SbeError).with.property('code', 'DELIVERY_REFUSED');
    expect(attempt.callCount).to.equal(1);
    expect(sleep.called).to.equal(false);
  });

  it('gives up after the attempts with DELIVERY_FAILED (exit 4) naming the last error', async () => {
    const attempt = sinon.stub().rejects(new Error('connection reset'));
    const error = (await withRetry('delivering x', policy, attempt, { logger, sleep: async () => undefined }).catch((e: unknown) => e)) as SbeError;
    expect(error.code).to.equal('DELIVERY_FAILED');
    expect(error.exitCode).to.equal(4);
    expect(error.message).to.equal('delivering x: failed after 4 attempt(s): connection reset');
    expect(attempt.callCount).to.equal(4);
  });

  it('stops waiting when the shutdown signal fires', async () => {
    const controller = new AbortController();
    const attempt = sinon.stub().rejects(new Error('timeout'));
    const pending = withRetry('delivering', { attempts: 5, initialDelay: '1h', maxDelay: '1h' }, attempt, { logger, signal: controller.signal, random: () => 0.9 });
    setTimeout(() => controller.abort(new Error('shutdown')), 20);
    const error = (await pending.catch((e: unknown) => e)) as SbeError;
    expect(error.code).to.equal('DELIVERY_FAILED');
    expect(error.message).to.match(/aborted by shutdown after attempt 1/);
  });
});
