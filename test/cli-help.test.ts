import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { Command } from 'commander';

import { buildProgram, main } from '../lib/cli/main';
import { cliReference } from '../lib/cli/reference';
import {
  belowOne,
  commaList,
  integer,
  nonNegativeInteger,
  nonNegativeNumber,
  positiveInteger,
  positiveNumber,
  unfreezeStages,
  unfreezeStagesOrAll,
} from '../lib/cli/options';
import { UserError } from '../lib/util';
import { REPO_ROOT, runCli, tempDir } from './helpers';

/**
 * What each command reads, written out here rather than taken from the spec, so that an option the
 * handler needs but the spec lacks (or help leaves out) fails this test.
 */
const COMMANDS: Record<string, { options: string[]; args?: string[] }> = {
  'data prepare': { options: ['--source', '--out'] },
  'data demo': { options: ['--out', '--per-class', '--seed'] },
  'data split': { options: ['--data', '--out', '--top', '--seed', '--exclude', '--relabel', '--copy'] },
  'data issues': { options: ['--data', '--folds', '--seed', '--out', '--json', '--split', '--cache'] },
  'data audit': { options: ['--data', '--split', '--json'] },
  'data index': { options: ['--data', '--out'] },
  main: {
    options: [
      '--data',
      '--out',
      '--seed',
      '--top',
      '--epochs',
      '--finetune-epochs',
      '--unfreeze',
      '--demo-per-class',
      '--copy',
      '--no-notebooks',
      '--precision',
    ],
  },
  train: {
    options: [
      '--mode',
      '--data',
      '--out',
      '--epochs',
      '--resume',
      '--seed',
      '--batch-size',
      '--accumulate',
      '--lr',
      '--optimizer',
      '--views',
      '--input-size',
      '--cache',
      '--unfreeze',
      '--class-weights',
      '--label-smoothing',
      '--mixup-alpha',
      '--cutmix-alpha',
      '--rand-augment',
      '--init',
      '--freeze-bn',
      '--recipe',
      '--head-epochs',
      '--lr-mult',
      '--lr-factor',
      '--schedule',
      '--pct-start',
      '--div',
      '--stage2-sizes',
      '--precision',
    ],
  },
  repeat: { options: ['--seeds'], args: ['command...'] },
  evaluate: { options: ['--model', '--data', '--out', '--tta', '--top-losses', '--input-size', '--precision'] },
  predict: { options: ['--model', '--top', '--json', '--png', '--precision'], args: ['image...'] },
  soup: { options: ['--out', '--data', '--recipe'], args: ['model...'] },
  explain: { options: ['--model', '--class', '--out', '--precision'], args: ['image...'] },
  'lr-find': { options: ['--data', '--steps', '--seed', '--cache', '--out', '--precision'] },
  bench: { options: ['--quick', '--json', '--profile', '--data'] },
  notebooks: { options: ['--out', '--only'] },
  export: { options: ['--model', '--out', '--quantize', '--force'] },
  serve: { options: ['--port', '--host'], args: ['dir'] },
};

/** Every runnable command of the tree, by its path below `boat` ("data split"). */
function leafCommands(command: Command, prefix: string[] = []): Map<string, Command> {
  const found = new Map<string, Command>();
  for (const sub of command.commands) {
    const name = [...prefix, sub.name()];
    if (sub.commands.length > 0) for (const [k, v] of leafCommands(sub, name)) found.set(k, v);
    else found.set(name.join(' '), sub);
  }
  return found;
}

/** Runs main() in-process; help text and error lines are collected instead of printed. */
async function run(argv: string[], program?: Command): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const prog = program ?? buildProgram({ writeOut: (s) => (out += s), writeErr: (s) => (err += s) });
  const consoleError = console.error;
  const debug = process.env.BOAT_DEBUG;
  delete process.env.BOAT_DEBUG; // as runCli does: the one-line message is what is checked
  console.error = (...parts: unknown[]) => {
    err += `${parts.join(' ')}\n`;
  };
  try {
    const code = await main(argv, prog);
    return { code, out, err };
  } finally {
    console.error = consoleError;
    if (debug !== undefined) process.env.BOAT_DEBUG = debug;
  }
}

test('every command and sub-command has help (exit 0) that lists each option it reads', async () => {
  assert.deepEqual(
    [...leafCommands(buildProgram()).keys()].sort(),
    Object.keys(COMMANDS).sort(),
    'the table above covers every command',
  );
  for (const [name, expected] of Object.entries(COMMANDS)) {
    const r = await run([...name.split(' '), '--help']);
    assert.equal(r.code, 0, name);
    assert.equal(r.err, '', name);
    assert.match(r.out, new RegExp(`^Usage: boat ${name} `), name);
    const options = r.out.slice(r.out.indexOf('\nOptions:\n'));
    for (const flag of [...expected.options, '--help'])
      assert.match(options, new RegExp(`\\n  (-\\w, )?${flag}( <[^>]+>)? `), `${name}: ${flag} in help`);
    for (const arg of expected.args ?? [])
      assert.match(r.out.split('\n')[0], new RegExp(`<${arg.replace('.', '\\.')}`), `${name}: <${arg}> in usage`);
    // And nothing is parsed that the table does not know of.
    const parsed = leafCommands(buildProgram())
      .get(name)!
      .options.map((o) => o.long);
    assert.deepEqual(parsed.sort(), [...expected.options].sort(), `${name}: parsed options`);
    // `boat help train` and `boat data help split` are the same text.
    const words = name.split(' ');
    assert.equal((await run([...words.slice(0, -1), 'help', words[words.length - 1]])).out, r.out, `help ${name}`);
  }
});

test('required options are named in the usage line and marked in help', async () => {
  const train = await run(['train', '--help']);
  assert.match(train.out, /^Usage: boat train --out <dir> \[options\]\n/);
  assert.match(train.out, /--mode <mode> .*\(required, unless --recipe\)/s);
  assert.match(train.out, /--out <dir> +where the model goes, e.g\. models\/NAME \(required\)/);
  assert.match((await run(['soup', '--help'])).out, /^Usage: boat soup --out <dir> \[options\] <model\.\.\.>\n/);
});

test('options documented only in code before are in help: lr-find --seed and main --top', async () => {
  assert.match((await run(['lr-find', '--help'])).out, /--seed <n> +random seed .*\(default:\s+0\)/s);
  assert.match((await run(['main', '--help'])).out, /--top <n> +keep the N largest classes \(default: 5\)/);
});

test('the top-level help lists the commands, the environment variables and the exit codes', async () => {
  const r = await run(['--help']);
  assert.equal(r.code, 0);
  for (const name of [
    'data',
    'main',
    'train',
    'evaluate',
    'predict',
    'soup',
    'explain',
    'lr-find',
    'bench',
    'notebooks',
  ])
    assert.match(r.out, new RegExp(`\\n  ${name} `));
  for (const v of ['BOAT_DEBUG', 'BOAT_BACKEND', 'BOAT_THREADS', 'BOAT_NATIVE', 'BOAT_NATIVE_JPEG', 'BOAT_JPEG_EXACT'])
    assert.match(r.out, new RegExp(`\\n  ${v}=`));
  assert.match(r.out, /Exit codes:\n {2}0 .*\n {2}1 .*\n {2}2 +usage/);
  assert.deepEqual(await run([]), r, 'bare boat prints the same help');
  const data = await run(['data', '--help']);
  for (const sub of ['prepare', 'demo', 'split', 'audit', 'index']) assert.match(data.out, new RegExp(`\\n  ${sub} `));
});

test('--version prints the version in package.json', () => {
  const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
    .version;
  for (const flag of ['--version', '-V']) {
    const r = runCli([flag]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
    assert.equal(r.stderr, '');
  }
});

test('a mistyped option is a one-line error that suggests the nearest valid one (exit 2)', () => {
  const r = runCli(['train', '--epoch', '3']);
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, "boat: error: unknown option '--epoch' (Did you mean --epochs?)\n");
  const sub = runCli(['data', 'split', '--sed', '3']);
  assert.equal(sub.status, 2);
  assert.equal(sub.stderr, "boat: error: unknown option '--sed' (Did you mean --seed?)\n");
});

test('an unknown command is a one-line error that suggests the nearest (exit 2)', () => {
  const r = runCli(['trian']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, "boat: error: unknown command 'trian' (Did you mean train?)\n");
  assert.equal(runCli(['data', 'splt']).stderr, "boat: error: unknown command 'splt' (Did you mean split?)\n");
});

test('exit codes: 0 ok, 1 failure, 2 usage', async () => {
  // 0: a command that ran.
  const dir = tempDir();
  const ok = runCli(['data', 'demo', '--out', path.join(dir, 'boats'), '--per-class', '1']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stderr, '');

  // 2: usage errors from parsing, each one line.
  const usage: Array<[string[], RegExp]> = [
    [['train', '--data', 'd'], /^boat: error: required option '--out <dir>' not specified\n$/],
    [
      ['train', '--out', 'm'],
      /^boat: error: --mode is required \(feature-extractor or finetune\), unless --recipe two-stage is given\n$/,
    ],
    [
      ['train', '--mode', 'finetune', '--out', 'm', '--lr', 'fast'],
      /^boat: error: option '--lr <x>' argument 'fast' is invalid\. Expected a number above 0\.\n$/,
    ],
    [
      ['train', '--mode', 'finetune', '--out', 'm', '--unfreeze', '6'],
      /^boat: error: option '--unfreeze <n>' argument '6' is invalid\. Expected 1 to 5 \(ResNet50 has 5 stages\)\.\n$/,
    ],
    [
      ['train', '--mode', 'finetune', '--out', 'm', '--batch-size', '0'],
      /^boat: error: option '--batch-size <n>' argument '0' is invalid\. Expected an integer of at least 1\.\n$/,
    ],
    [
      ['train', '--mode', 'finetune', '--out', 'm', '--optimizer', 'rmsprop'],
      /^boat: error: option '--optimizer <name>' argument 'rmsprop' is invalid\. Allowed choices are sgd, adam\.\n$/,
    ],
    [
      ['main', '--seed', '1.5'],
      /^boat: error: option '--seed <n>' argument '1\.5' is invalid\. Expected an integer\.\n$/,
    ],
    [['data', 'split', '--seed'], /^boat: error: option '--seed <n>' argument missing\n$/],
    [
      ['evaluate', '--model', 'm', '--out', ''],
      /^boat: error: option '--out <dir>' argument '' is invalid\. Expected a value\.\n$/,
    ],
    [
      ['train', '--mode', 'finetune', '--out='],
      /^boat: error: option '--out <dir>' argument '' is invalid\. Expected a value\.\n$/,
    ],
    [['predict', '--model', 'm'], /^boat: error: missing required argument 'image'\n$/],
    [
      ['evaluate', '--model', 'm', 'extra'],
      /^boat: error: too many arguments for 'evaluate'\. Expected 0 arguments but got 1\.\n$/,
    ],
  ];
  for (const [argv, message] of usage) {
    const r = await run(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, message, argv.join(' '));
  }
  // 2: a group without its sub-command shows the group's help on stderr.
  const group = await run(['data']);
  assert.equal(group.code, 2);
  assert.equal(group.out, '');
  assert.match(group.err, /^Usage: boat data \[options\] \[command\]/);
  // 2: bad input found while running (a UserError), through the real process.
  const missing = runCli(['data', 'audit', '--data', path.join(dir, 'nope')]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^boat: error: data folder not found: [^\n]*\n$/);

  // 1 and 2 from handlers that throw: a failure is 1, a UserError 2, each one line.
  const failed = await run(
    ['fail'],
    buildProgramWith('fail', new Error('the disk is on fire\n    at somewhere (file.js:1:1)')),
  );
  assert.equal(failed.code, 1);
  assert.equal(failed.err, 'boat: error: the disk is on fire\n');
  const refused = await run(['refuse'], buildProgramWith('refuse', new UserError('no such boat')));
  assert.equal(refused.code, 2);
  assert.equal(refused.err, 'boat: error: no such boat\n');
});

function buildProgramWith(name: string, error: Error): Command {
  const program = buildProgram();
  program.command(name).action(() => {
    throw error;
  });
  return program;
}

test('option values reach the handlers with their names, types and defaults', async () => {
  const seen = async (argv: string[]): Promise<unknown[]> => {
    const program = buildProgram();
    let args: unknown[] = [];
    let command: Command = program;
    for (const name of argv.slice(0, argv[0] === 'data' ? 2 : 1))
      command = command.commands.find((c) => c.name() === name)!;
    command.action((...received: unknown[]) => {
      args = received.slice(0, -1); // the last one is the Command itself
    });
    const r = await run(argv, program);
    assert.equal(r.code, 0, r.err);
    return args;
  };
  assert.deepEqual(
    await seen([
      'train',
      '--mode',
      'finetune',
      '--out',
      'm',
      '--lr',
      '0.05',
      '--unfreeze',
      '2',
      '--freeze-bn',
      '--seed',
      '-3',
      '--class-weights',
      'balanced',
      '--cutmix-alpha',
      '1.5',
      '--rand-augment',
      '3, 12',
    ]),
    [
      {
        mode: 'finetune',
        out: 'm',
        data: 'data',
        epochs: 24,
        seed: -3,
        batchSize: 32,
        lr: 0.05,
        optimizer: 'sgd',
        views: 0,
        cache: '.cache/features',
        unfreeze: 2,
        classWeights: 'balanced',
        labelSmoothing: 0,
        mixupAlpha: 0,
        cutmixAlpha: 1.5,
        randAugment: { numOps: 3, magnitude: 12 },
        freezeBn: true,
      },
    ],
  );
  assert.deepEqual(await seen(['main', '--unfreeze', 'all', '--finetune-epochs', '0']), [
    {
      out: 'runs/main',
      seed: 38,
      top: 5,
      epochs: 24,
      finetuneEpochs: 0,
      unfreeze: 'all',
      demoPerClass: 40,
      notebooks: true,
    },
  ]);
  assert.deepEqual(await seen(['main']), [
    // No --data: the handler uses data/boats, the one folder where it may make the demo set.
    { out: 'runs/main', seed: 38, top: 5, epochs: 24, unfreeze: 1, demoPerClass: 40, notebooks: true },
  ]);
  assert.equal(((await seen(['main', '--no-notebooks']))[0] as { notebooks: boolean }).notebooks, false);
  assert.deepEqual(await seen(['predict', 'a.jpg', '--model', 'm', 'b.jpg', '--json']), [
    ['a.jpg', 'b.jpg'],
    { model: 'm', top: 3, json: true },
  ]);
  assert.deepEqual(await seen(['soup', 'a', 'b', '--out', 's', '--recipe', 'uniform']), [
    ['a', 'b'],
    { out: 's', data: 'data/val', recipe: 'uniform' },
  ]);
  assert.deepEqual(await seen(['notebooks', '--only', '01,04']), [{ only: ['01', '04'] }]);
  assert.deepEqual(await seen(['data', 'split', '--top', '5']), [
    { data: 'data/boats', out: 'data', top: 5, seed: 38 },
  ]);
});

test('value parsers accept what they should and reject the rest', () => {
  assert.equal(integer('-5'), -5);
  assert.equal(integer('12'), 12);
  for (const bad of ['1.5', 'five', '', '1e3', ' 3'])
    assert.throws(() => integer(bad), { code: 'commander.invalidArgument' }, bad);
  assert.equal(nonNegativeInteger('0'), 0);
  assert.throws(() => nonNegativeInteger('-1'), { code: 'commander.invalidArgument' });
  assert.equal(positiveInteger('1'), 1);
  assert.throws(() => positiveInteger('0'), { code: 'commander.invalidArgument' });
  assert.equal(positiveNumber('1e-30'), 1e-30);
  assert.equal(positiveNumber('0.001'), 0.001);
  for (const bad of ['0', '-1', 'abc', '', 'Infinity'])
    assert.throws(() => positiveNumber(bad), { code: 'commander.invalidArgument' }, bad);
  assert.equal(unfreezeStages('5'), 5);
  for (const bad of ['0', '6', 'all'])
    assert.throws(() => unfreezeStages(bad), { code: 'commander.invalidArgument' }, bad);
  assert.equal(unfreezeStagesOrAll('all'), 'all');
  assert.equal(unfreezeStagesOrAll('3'), 3);
  assert.deepEqual(commaList('01, 02,'), ['01', '02']);
  assert.deepEqual(['0', '0.1', '0.999'].map(belowOne), [0, 0.1, 0.999]);
  for (const bad of ['-0.1', '1', '1.5', 'abc', '', 'NaN'])
    assert.throws(() => belowOne(bad), { code: 'commander.invalidArgument' }, bad);
  assert.deepEqual(['0', '0.2', '1', '1e3'].map(nonNegativeNumber), [0, 0.2, 1, 1000]);
  for (const bad of ['-0.1', 'abc', '', 'NaN', 'Infinity', ' '])
    assert.throws(() => nonNegativeNumber(bad), { code: 'commander.invalidArgument' }, bad);
  assert.throws(() => commaList(','), { code: 'commander.invalidArgument' });
});

test('docs/cli.md is the reference generated from the specs', () => {
  const page = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'cli.md'), 'utf8');
  assert.ok(
    page === cliReference(buildProgram()),
    'docs/cli.md is out of date: npm run build && node scripts/cli-reference.js > docs/cli.md',
  );
  for (const [name, expected] of Object.entries(COMMANDS)) {
    const section = page.slice(page.indexOf(`### \`boat ${name}\``)).split('\n### ')[0];
    for (const flag of expected.options)
      assert.match(section, new RegExp(`\\| \`${flag}( <[^>]+>)?\` \\|`), `docs: boat ${name} ${flag}`);
  }
});
