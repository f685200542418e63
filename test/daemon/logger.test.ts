import { Writable } from 'node:stream';
import { expect } from 'chai';
import { createLogger, createReconfigurableLogger, defaultLogFormat } from '../../daemon/logger';

class Lines extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
  get lines(): string[] {
    return this.text.split('\n').filter((line) => line !== '');
  }
}

describe('daemon/logger', () => {
  it('journal: each line starts with its syslog priority, <3> error to <7> debug', () => {
    const out = new Lines();
    const logger = createLogger({ stream: out, level: 'debug', format: 'journal' });
    logger.error('e');
    logger.warn('w');
    logger.info('i');
    logger.debug('d');
    expect(out.lines).to.deep.equal(['<3>e', '<4>w', '<6>i', '<7>d']);
  });

  it('journal: a message or field with line breaks stays on one line; profile= and run= come first', () => {
    const out = new Lines();
    const logger = createLogger({ stream: out, level: 'info', format: 'journal' }).child({ run: 'main-20261204T020000Z', profile: 'main' });
    logger.error('file.yaml is not valid\n  file.yaml:3:1: bad', { attempt: 2, detail: 'a\nb' });
    expect(out.lines).to.deep.equal(['<3>file.yaml is not valid |   file.yaml:3:1: bad profile=main run=main-20261204T020000Z attempt=2 detail="a\\nb"']);
  });

  it('text and json: one line per entry, with a timestamp', () => {
    const text = new Lines();
    createLogger({ stream: text, format: 'text' }).warn('careful', { profile: 'p' });
    expect(text.lines).to.have.length(1);
    expect(text.lines[0]).to.match(/^\d{4}-\d{2}-\d{2}T\S+Z warn  careful profile=p$/);
    const json = new Lines();
    createLogger({ stream: json, format: 'json' }).info('hello\nworld', { profile: 'p', run: 'r' });
    expect(json.lines).to.have.length(1);
    expect(JSON.parse(json.lines[0]!)).to.include({ level: 'info', message: 'hello\nworld', profile: 'p', run: 'r' });
  });

  it('journal under systemd ($JOURNAL_STREAM), text otherwise', () => {
    expect(defaultLogFormat({ JOURNAL_STREAM: '8:12345' })).to.equal('journal');
    expect(defaultLogFormat({})).to.equal('text');
  });

  it('a reconfigurable logger changes level and format at once, children included', () => {
    const out = new Lines();
    const logger = createReconfigurableLogger({ stream: out, level: 'info', format: 'journal' });
    const child = logger.child({ profile: 'p' }).child({ run: 'r' });
    child.debug('hidden');
    child.info('shown');
    logger.reconfigure({ stream: out, level: 'debug', format: 'journal' });
    child.debug('now shown', { extra: 1 });
    logger.reconfigure({ stream: out, level: 'warn', format: 'json' });
    child.info('hidden again');
    child.warn('as json');
    expect(out.lines.slice(0, 2)).to.deep.equal(['<6>shown profile=p run=r', '<7>now shown profile=p run=r extra=1']);
    expect(out.lines).to.have.length(3);
    expect(JSON.parse(out.lines[2]!)).to.include({ level: 'warn', message: 'as json', profile: 'p', run: 'r' });
  });
});
