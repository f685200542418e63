import { expect } from 'chai';
import sinon from 'sinon';
import type { Logger } from '../../daemon/logger';
import type { Profile } from '../../daemon/profiles';
import { CronTimer, missedOccurrence, nextOccurrence, previousOccurrence, Scheduler } from '../../daemon/scheduler';
import { makeProfile } from '../helpers/sourceDb';

interface Logged {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

function recordingLogger(into: Logged[], base: Record<string, unknown> = {}): Logger {
  const log = (level: string) => (message: string, fields: Record<string, unknown> = {}) => into.push({ level, message, fields: { ...base, ...fields } });
  return { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug'), child: (fields) => recordingLogger(into, { ...base, ...fields }) };
}

function scheduled(id: string, schedule: string, timezone = 'UTC'): Profile {
  return { ...makeProfile({ id }), schedule, timezone };
}

const iso = (dates: readonly (Date | undefined)[]) => dates.map((date) => date?.toISOString());

describe('daemon/scheduler', () => {
  describe('occurrences', () => {
    it('5 fields: minute precision, in the profile time zone (DST included)', () => {
      // 02:00 in New York is 07:00Z in winter and 06:00Z in summer.
      expect(nextOccurrence('0 2 * * *', 'America/New_York', new Date('2026-12-04T07:00:00Z'))!.toISOString()).to.equal('2026-12-05T07:00:00.000Z');
      expect(nextOccurrence('0 2 * * *', 'America/New_York', new Date('2026-07-04T12:00:00Z'))!.toISOString()).to.equal('2026-07-05T06:00:00.000Z');
      expect(previousOccurrence('0 2 * * *', 'UTC', new Date('2026-12-04T02:00:00Z'))!.toISOString(), 'strictly before').to.equal('2026-12-03T02:00:00.000Z');
    });

    it('6 fields: seconds first', () => {
      expect(nextOccurrence('*/20 * * * * *', 'UTC', new Date('2026-12-04T02:00:00.500Z'))!.toISOString()).to.equal('2026-12-04T02:00:20.000Z');
      expect(previousOccurrence('30 15 2 * * *', 'UTC', new Date('2026-12-04T03:00:00Z'))!.toISOString()).to.equal('2026-12-04T02:15:30.000Z');
    });

    it('a missed run: the previous occurrence when it is later than the last scheduled run; none without history', () => {
      const profile = { schedule: '0 2 * * *', timezone: 'UTC' };
      const now = new Date('2026-12-04T10:00:00Z');
      expect(missedOccurrence(profile, new Date('2026-12-02T02:00:00Z'), now)!.toISOString()).to.equal('2026-12-04T02:00:00.000Z');
      expect(missedOccurrence(profile, new Date('2026-12-04T02:00:00Z'), now), 'already ran').to.equal(undefined);
      expect(missedOccurrence(profile, undefined, now), 'never ran: nothing missed').to.equal(undefined);
      expect(missedOccurrence({ timezone: 'UTC' }, new Date('2026-01-01T00:00:00Z'), now), 'no schedule').to.equal(undefined);
    });
  });

  describe('CronTimer', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ now: new Date('2026-12-04T01:59:58.400Z'), toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    });
    afterEach(() => clock.restore());

    it('ticks at the exact scheduled times and stops', async () => {
      const ticks: Date[] = [];
      const timer = new CronTimer('*/1 * * * * *', 'UTC', (tick) => ticks.push(tick));
      timer.start();
      expect(timer.nextTick!.toISOString()).to.equal('2026-12-04T01:59:59.000Z');
      await clock.tickAsync(3000);
      expect(iso(ticks)).to.deep.equal(['2026-12-04T01:59:59.000Z', '2026-12-04T02:00:00.000Z', '2026-12-04T02:00:01.000Z']);
      timer.stop();
      await clock.tickAsync(5000);
      expect(ticks).to.have.length(3);
      expect(timer.nextTick).to.equal(undefined);
    });

    it('waits for a tick days away in steps (setTimeout cannot wait that long)', async () => {
      const ticks: Date[] = [];
      const timer = new CronTimer('0 0 2 1 1 *', 'UTC', (tick) => ticks.push(tick)); // 1 January, 02:00:00
      timer.start();
      expect(timer.nextTick!.toISOString()).to.equal('2027-01-01T02:00:00.000Z');
      await clock.tickAsync(28 * 24 * 3600 * 1000);
      expect(ticks).to.deep.equal([]);
      await clock.tickAsync(3 * 24 * 3600 * 1000);
      expect(iso(ticks)).to.deep.equal(['2027-01-01T02:00:00.000Z']);
      timer.stop();
    });
  });

  describe('Scheduler', () => {
    let clock: sinon.SinonFakeTimers;
    beforeEach(() => {
      clock = sinon.useFakeTimers({ now: new Date('2026-12-04T02:00:00.100Z'), toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    });
    afterEach(() => clock.restore());

    it('never overlaps two runs of a profile: a tick during a run is skipped and logged at warning', async () => {
      const logged: Logged[] = [];
      const started: string[] = [];
      let finish: (() => void) | undefined;
      const scheduler = new Scheduler({
        logger: recordingLogger(logged),
        runScheduled: (profile, tick) => {
          started.push(`${profile.id}@${tick.toISOString()}`);
          return new Promise<void>((resolve) => (finish = resolve));
        },
      });
      scheduler.set(scheduled('slow', '*/1 * * * * *'));
      await clock.tickAsync(1000); // 02:00:01 starts
      await clock.tickAsync(2000); // 02:00:02 and 02:00:03 are skipped
      expect(started).to.deep.equal(['slow@2026-12-04T02:00:01.000Z']);
      expect(scheduler.runningProfiles()).to.deep.equal(['slow']);
      const warnings = logged.filter((entry) => entry.level === 'warn');
      expect(warnings.map((entry) => entry.message)).to.deep.equal([
        'tick at 2026-12-04T02:00:02.000Z skipped: the scheduled run at 2026-12-04T02:00:01.000Z is still running (runs of a profile never overlap)',
        'tick at 2026-12-04T02:00:03.000Z skipped: the scheduled run at 2026-12-04T02:00:01.000Z is still running (runs of a profile never overlap)',
      ]);
      expect(warnings[0]!.fields).to.include({ profile: 'slow' });
      finish!();
      await clock.tickAsync(1000);
      expect(started).to.deep.equal(['slow@2026-12-04T02:00:01.000Z', 'slow@2026-12-04T02:00:04.000Z']);
      finish!();
      scheduler.stop();
      await scheduler.idle();
    });

    it('runs profiles independently, keeps the timer when only the profile body changes, stops a removed profile', async () => {
      const started: string[] = [];
      const scheduler = new Scheduler({
        logger: recordingLogger([]),
        runScheduled: async (profile, tick) => {
          started.push(`${profile.id}:${profile.currency}@${tick.toISOString().slice(17, 19)}`);
        },
      });
      scheduler.set(scheduled('a', '*/1 * * * * *'));
      scheduler.set(scheduled('b', '*/2 * * * * *'));
      await clock.tickAsync(2000);
      scheduler.set({ ...scheduled('a', '*/1 * * * * *'), currency: 'EUR' });
      await clock.tickAsync(1000);
      scheduler.remove('b');
      await clock.tickAsync(2000);
      expect(started.sort()).to.deep.equal(['a:EUR@03', 'a:EUR@04', 'a:EUR@05', 'a:USD@01', 'a:USD@02', 'b:USD@02'].sort());
      expect(scheduler.upcoming().map((next) => next.profileId)).to.deep.equal(['a']);
      scheduler.stop();
      expect(scheduler.upcoming()).to.deep.equal([]);
    });

    it('runExclusive reports a profile busy, and a task that throws is logged, not thrown', async () => {
      const logged: Logged[] = [];
      const scheduler = new Scheduler({ logger: recordingLogger(logged), runScheduled: async () => undefined });
      expect(scheduler.runExclusive('p', 'the resume at start', async () => {
        throw new Error('boom');
      })).to.equal(true);
      expect(scheduler.runExclusive('p', 'another', async () => undefined)).to.equal(false);
      await scheduler.idle();
      expect(scheduler.runningProfiles()).to.deep.equal([]);
      expect(logged.find((entry) => entry.level === 'error')!.message).to.match(/^unexpected error in the resume at start: Error: boom/);
    });
  });
});
