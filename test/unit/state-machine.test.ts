import { expect } from 'chai';
import {
  canonicalJson,
  guardFor,
  INITIAL_STATUS,
  isTerminal,
  PROCESSABLE_STATUS,
  RECORD_STATUSES,
  ruleFor,
  stateDiagram,
  TERMINAL_STATUSES,
  TRANSITIONS,
} from '../../shared/index.js';

describe('state machine table', () => {
  it('is the contract: created pending, a worker finishes it, an operator retries a failure, nothing else', () => {
    expect(TRANSITIONS.map((t) => `${t.from ?? '∅'}→${t.to} by ${t.by}`)).to.deep.equal([
      '∅→pending by client',
      'pending→processed by worker',
      'pending→failed by worker',
      'failed→pending by operator',
    ]);
    expect(INITIAL_STATUS).to.equal('pending');
    expect(PROCESSABLE_STATUS).to.equal('pending');
    expect(TERMINAL_STATUSES).to.deep.equal(['processed', 'failed']);
    expect(RECORD_STATUSES.filter(isTerminal)).to.deep.equal(['processed', 'failed']);
  });

  it('gives each change its guard and refuses a change the table does not have', () => {
    expect(guardFor('processed', 'worker')).to.equal('pending');
    expect(guardFor('failed', 'worker')).to.equal('pending');
    expect(guardFor('pending', 'operator')).to.equal('failed');
    expect(() => guardFor('processed', 'operator')).to.throw('no transition to processed by operator');
    expect(() => guardFor('pending', 'client')).to.throw();
    expect(ruleFor('processed', 'pending')).to.equal(undefined);
    expect(ruleFor('failed', 'pending')?.event).to.equal('record.retried');
  });

  it('draws the table as a Mermaid diagram, one arrow per transition', () => {
    expect(stateDiagram().split('\n')).to.deep.equal([
      'stateDiagram-v2',
      '  [*] --> pending: record.created (client)',
      '  pending --> processed: record.processed (worker)',
      '  pending --> failed: record.failed (worker)',
      '  failed --> pending: record.retried (operator)',
    ]);
  });
});

describe('canonicalJson', () => {
  it('is the same text for the same JSON value, whatever the key order; array order counts', () => {
    const a = JSON.parse('{"b":[1,{"y":2,"x":1}],"a":null,"c":"é"}') as unknown;
    const b = JSON.parse('{ "c": "é", "a": null, "b": [1, {"x": 1, "y": 2}] }') as unknown;
    expect(canonicalJson(a)).to.equal(canonicalJson(b));
    expect(canonicalJson(a)).to.equal('{"a":null,"b":[1,{"x":1,"y":2}],"c":"é"}');
    expect(canonicalJson([1, 2])).to.not.equal(canonicalJson([2, 1]));
  });

  it('keeps a "__proto__" key as data', () => {
    const parsed = JSON.parse('{"__proto__":{"x":1},"a":1}') as unknown;
    expect(canonicalJson(parsed)).to.equal('{"__proto__":{"x":1},"a":1}');
  });
});
