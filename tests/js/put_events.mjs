// One PutEvents call through the AWS SDK for JavaScript v3, for the Python suites to drive (tests/python/
// test_undeclared_properties.py): the request comes as JSON in argv[2], the outcome goes to stdout as one JSON line,
// {"status": 200} or {"error": name, "status": httpStatus, "message": ...}. The exit code is 0 either way; only a
// broken script (no SDK, bad input) exits non-zero.
//
// argv[2]: {"endpoint", "trackingId", "sessionId", "userId"?, "events": [{"eventId", "eventType", "itemId"?,
//           "sentAt" (epoch seconds), "properties"? (the JSON text, as the SDK sends it)}]}
// Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment, region us-east-1.
import { PersonalizeEventsClient, PutEventsCommand } from "@aws-sdk/client-personalize-events";

const request = JSON.parse(process.argv[2]);
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

const input = {
  trackingId: request.trackingId,
  sessionId: request.sessionId,
  userId: request.userId,
  eventList: request.events.map((e) => ({ ...e, sentAt: new Date(e.sentAt * 1000) })),
};

try {
  const out = await client.send(new PutEventsCommand(input));
  console.log(JSON.stringify({ status: out.$metadata.httpStatusCode }));
} catch (e) {
  if (e.$metadata === undefined) throw e;
  console.log(JSON.stringify({ error: e.name, status: e.$metadata.httpStatusCode, message: e.message }));
}
