// One PutItems, PutUsers, PutActions or PutActionInteractions call through the AWS SDK for JavaScript v3, for the
// Python suites to drive (tests/python/test_put_records_js.py): the request comes as JSON in argv[2], the outcome
// goes to stdout as one JSON line, {"status": 200} or {"error": name, "status": httpStatus, "message": ...}. The
// exit code is 0 either way; only a broken script (no SDK, bad input) exits non-zero.
//
// argv[2]: {"endpoint", "operation": "PutItems" | "PutUsers" | "PutActions" | "PutActionInteractions",
//           "input": the command's input as the SDK takes it, except that an action interaction's `timestamp`
//           is epoch seconds (turned into a Date here, as an application would pass it)}
// Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment, region us-east-1.
import {
  PersonalizeEventsClient,
  PutActionInteractionsCommand,
  PutActionsCommand,
  PutItemsCommand,
  PutUsersCommand,
} from "@aws-sdk/client-personalize-events";

const COMMANDS = {
  PutItems: PutItemsCommand,
  PutUsers: PutUsersCommand,
  PutActions: PutActionsCommand,
  PutActionInteractions: PutActionInteractionsCommand,
};

const request = JSON.parse(process.argv[2]);
const Command = COMMANDS[request.operation];
if (Command === undefined) throw new Error(`unknown operation ${request.operation}`);
const client = new PersonalizeEventsClient({
  endpoint: request.endpoint,
  region: "us-east-1",
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY,
  },
  // One attempt: a test must see the server's first answer, not a retry's.
  maxAttempts: 1,
});

const input = { ...request.input };
if (input.actionInteractions !== undefined) {
  input.actionInteractions = input.actionInteractions.map((a) => ({ ...a, timestamp: new Date(a.timestamp * 1000) }));
}

try {
  const out = await client.send(new Command(input));
  console.log(JSON.stringify({ status: out.$metadata.httpStatusCode }));
} catch (e) {
  if (e.$metadata === undefined) throw e;
  console.log(JSON.stringify({ error: e.name, status: e.$metadata.httpStatusCode, message: e.message }));
}
