// The @a2a-js/sdk client driving an agenthost-served agent, as the A2A tests need it.
//
// Usage: node a2a_client.mjs ECHO_BASE SPIN_BASE MODE
//   (run with tests/peers as the working directory, where npm installed the SDK)
//   ECHO_BASE: an agent answering with the text it gets; SPIN_BASE: one that works until
//   canceled; MODE: 1.0 (the SDK's default transport) or 0.3 (its legacy transport).
// Prints one JSON object per line: {"step": ..., ...}. Exits non-zero on an unexpected error.
import { randomUUID } from 'node:crypto';
import { Role, TaskState } from '@a2a-js/sdk';
import { ClientFactory, DefaultAgentCardResolver, JsonRpcTransportFactory } from '@a2a-js/sdk/client';

const [ECHO, SPIN, MODE] = process.argv.slice(2);
const legacy = MODE === '0.3';
const out = (step, fields) => console.log(JSON.stringify({ step, ...fields }));
const stateName = (s) => (typeof s === 'number' ? TaskState[s] : s);
const resolver = new DefaultAgentCardResolver({ legacyCompat: { enabled: legacy } });
const factory = new ClientFactory({
  transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: legacy } })],
  cardResolver: resolver,
});

// The JS resolver joins the card path relative to the base: it needs a trailing slash.
const slash = (u) => (u.endsWith('/') ? u : `${u}/`);
async function clientFor(base) {
  const card = await resolver.resolve(slash(base));
  if (legacy) {
    card.supportedInterfaces = card.supportedInterfaces.filter((i) => i.protocolVersion?.startsWith('0.3'));
  }
  return { card, client: await factory.createFromAgentCard(card) };
}

const textMsg = (text) => ({
  messageId: randomUUID(), role: Role.ROLE_USER, contextId: '', taskId: '',
  parts: [{ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: '' }],
  metadata: undefined, extensions: [], referenceTaskIds: [],
});
const textOf = (task) => {
  const parts = [...(task.status?.message?.parts ?? []), ...(task.artifacts ?? []).flatMap((a) => a.parts)];
  return parts.filter((p) => p.content?.$case === 'text').map((p) => p.content.value).join(' ');
};

const { card, client } = await clientFor(ECHO);
out('card', { name: card.name, transport: client.transport.constructor.name });

const task = await client.sendMessage({ message: textMsg('hello from js') });
out('send', { state: stateName(task.status.state), text: textOf(task), id: task.id });

const kinds = [];
let last;
for await (const ev of client.sendMessageStream({ message: textMsg('streamed from js') })) {
  const kind = ev.payload?.$case ?? ev.kind;
  kinds.push(kind);
  if (kind === 'task') last = ev.payload.value;
  if (kind === 'statusUpdate') last.status = ev.payload.value.status;
}
out('stream', { kinds, state: stateName(last.status.state), text: textOf(last) });

const got = await client.getTask({ id: task.id, historyLength: 1 });
out('get', { state: stateName(got.status.state), history: got.history.length });

try {
  const listed = await client.listTasks({ tenant: '', contextId: '', status: 0, pageSize: 1, pageToken: '' });
  out('list', { count: listed.tasks.length, total: listed.totalSize });
} catch (e) {
  out('list', { unsupported: true, error: e.message });
}

const spin = (await clientFor(SPIN)).client;
const running = await spin.sendMessage({ message: textMsg('loop'), configuration: { returnImmediately: true } });
await new Promise((r) => setTimeout(r, 500));
const canceled = await spin.cancelTask({ id: running.id });
out('cancel', { after: stateName(canceled.status.state) });
