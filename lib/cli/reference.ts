/**
 * docs/cli.md, made from the commander specs so the page cannot drift from what the CLI parses:
 * `node scripts/cli-reference.js > docs/cli.md` writes it and test/cli-help.test.ts checks it is current.
 */
import { Command, Option } from 'commander';

import { NOTEBOOK_ENVIRONMENT } from './notebooks';
import { ENVIRONMENT, EXIT_CODES, isRequired } from './program';

const cell = (text: string): string =>
  text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\n/g, ' ');
const code = (text: string): string => `\`${text}\``;

/** Every command below `command` that runs something, depth first, in help order. */
function leaves(command: Command): Command[] {
  return command.commands.flatMap((sub) => (sub.commands.length > 0 ? leaves(sub) : [sub]));
}

function fullName(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function optionDetails(option: Option): string {
  const details: string[] = isRequired(option) ? ['required'] : [];
  if (option.argChoices) details.push(`one of ${option.argChoices.map(code).join(', ')}`);
  if (option.defaultValue !== undefined && !option.isBoolean())
    details.push(`default ${code(String(option.defaultValue))}`);
  return details.join('; ');
}

function commandSection(command: Command): string {
  const help = command.createHelp(); // with the root's configureHelp, so the usage names required options
  const description = command.description();
  const lines = [
    `### ${code(fullName(command))}`,
    '',
    `${cell(description[0].toUpperCase() + description.slice(1))}.`,
    '',
    '```',
    help.commandUsage(command),
    '```',
    '',
  ];
  const args = help.visibleArguments(command);
  if (args.length > 0) {
    lines.push('| argument | meaning |', '|---|---|');
    for (const a of args) lines.push(`| ${code(help.argumentTerm(a))} | ${cell(a.description)} |`);
    lines.push('');
  }
  lines.push('| option | meaning | value |', '|---|---|---|');
  for (const o of command.options) {
    const meaning = isRequired(o) ? o.description.replace(/ \(required\)$/, '') : o.description;
    lines.push(`| ${code(o.flags)} | ${cell(meaning)} | ${cell(optionDetails(o))} |`);
  }
  lines.push('');
  return lines.join('\n');
}

/** "these variables override them: BOAT_DATA_ROOT, …" from the notebooks command's help, in code spans. */
function notebookVariables(): string {
  const text = NOTEBOOK_ENVIRONMENT.slice(NOTEBOOK_ENVIRONMENT.indexOf('these variables')).trim().replace(/\s+/g, ' ');
  return text.replace(/(BOAT_[A-Z_]+(=1)?)/g, '`$1`');
}

export function cliReference(program: Command): string {
  const commands = leaves(program);
  return [
    '# The `boat` command line',
    '',
    '<!-- Generated from the commander specs in lib/cli/ by `node scripts/cli-reference.js > docs/cli.md`;',
    '     test/cli-help.test.ts fails when this page and the specs differ. -->',
    '',
    'Run it as `npx boat …`, `node bin/boat.js …` or `npm run boat -- …`. Every command prints its options',
    'with `--help` (`boat train --help`, `boat data split --help`, or `boat help train`), and `boat --version`',
    'prints the version. An unknown option or command is a one-line error that suggests the nearest valid',
    "one: `boat train --epoch 3` says `boat: error: unknown option '--epoch' (Did you mean --epochs?)`.",
    'Errors are one line on stderr, `boat: error: …`, never a stack trace unless `BOAT_DEBUG=1`.',
    '',
    '## Exit codes',
    '',
    '| code | meaning |',
    '|---|---|',
    ...EXIT_CODES.map(([c, meaning]) => `| ${c} | ${cell(meaning)} |`),
    '',
    '## Environment',
    '',
    '| variable | effect |',
    '|---|---|',
    ...ENVIRONMENT.map(([setting, meaning]) => `| ${code(setting)} | ${cell(meaning)} |`),
    '',
    `The notebooks (run headless by \`boat notebooks\` and \`boat main\`, or opened in JupyterLab) take their parameters from their first cell; ${notebookVariables()}`,
    '',
    '## Commands',
    '',
    '| command | what it does |',
    '|---|---|',
    ...commands.map((c) => `| [${code(fullName(c))}](#${fullName(c).replace(/ /g, '-')}) | ${cell(c.description())} |`),
    '',
    ...commands.map(commandSection),
  ].join('\n');
}
