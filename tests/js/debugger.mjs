// The web debugger in a real browser: headless Chromium (the system's, never a downloaded one)
// driven by playwright-core. Run by tests/python/test_debugger.py, which starts the server and
// passes everything in the environment. Exits non-zero with the reason on the first failed check.
//
//   DEBUGGER_URL, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TRACKING_ID, CHROMIUM, AWS_CLI, SCREENSHOT
//   (aws-cli's own AWS_* variables come along in the environment)
import { spawnSync } from "node:child_process";
import { chromium } from "playwright-core";

const env = process.env;
const base = env.DEBUGGER_URL;
const endpoint = new URL(base).origin;

function fail(message) {
  console.error("FAILED: " + message);
  process.exit(1);
}

function aws(...args) {
  const done = spawnSync(env.AWS_CLI, ["personalize-events", ...args, "--endpoint-url", endpoint], { encoding: "utf-8", env });
  return done;
}

function putEvents(events, { user = "dbg-user", session = "dbg-session" } = {}) {
  return aws("put-events", "--tracking-id", env.TRACKING_ID, "--user-id", user, "--session-id", session,
    "--event-list", JSON.stringify(events));
}

const browser = await chromium.launch({ executablePath: env.CHROMIUM, args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 1100 } });
  await page.goto(base);

  // Nothing without signing in: the form shows, the API refuses.
  await page.waitForSelector("#signin-form", { state: "visible", timeout: 10000 });
  if (await page.isVisible("#app")) fail("the app is visible before signing in");
  const refused = await page.evaluate(async () => (await fetch("/_interlog/ui/api/resources")).status);
  if (refused !== 403) fail(`the API answered ${refused} before signing in`);

  // A wrong secret is refused with a reason.
  await page.fill("#access-key-id", env.ACCESS_KEY_ID);
  await page.fill("#secret-access-key", "not-the-secret");
  await page.click("#signin-form button[type=submit]");
  await page.waitForFunction(() => document.getElementById("signin-error").textContent.includes("AccessDenied"), null, { timeout: 5000 });

  await page.fill("#secret-access-key", env.SECRET_ACCESS_KEY);
  await page.click("#signin-form button[type=submit]");
  await page.waitForSelector("#live.on", { timeout: 10000 });
  await page.waitForSelector(`#resources .mono:text-is("${env.TRACKING_ID}")`, { timeout: 5000 });
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "interlog_ui");
  if (!session || !session.httpOnly || session.sameSite !== "Strict" || session.expires <= 0) {
    fail("the session cookie is not HttpOnly, SameSite=Strict with a lifetime: " + JSON.stringify(session));
  }

  // Stored events appear within one second of PutEvents' answer.
  const now = Math.floor(Date.now() / 1000);
  let done = putEvents([
    { eventId: "dbg-1", eventType: "click", itemId: "item-1", sentAt: now },
    { eventId: "dbg-2", eventType: "view", itemId: "item-2", sentAt: now + 1 },
  ]);
  if (done.status !== 0) fail("put-events: " + done.stderr);
  const answered = Date.now();
  await page.waitForSelector('#tail tr[data-event-id="dbg-2"]', { state: "attached", timeout: 1000 })
    .catch(() => fail("stored events did not appear within one second"));
  if (!(await page.$('#tail tr[data-event-id="dbg-1"]'))) fail("the first event of the request is not shown");
  console.log(`stored events shown ${Date.now() - answered} ms after PutEvents answered`);

  // A rejected request, with its error type, message and offending member.
  done = putEvents([{ eventId: "dbg-bad", eventType: "x".repeat(300), sentAt: now }]);
  if (done.status === 0) fail("an eventType of 300 characters was accepted");
  const rejected = await page.waitForSelector('#rejected tr[data-error-type="InvalidInputException"]', { timeout: 2000 })
    .catch(() => fail("the rejected request did not appear"));
  const rejectedText = await rejected.innerText();
  for (const part of ["PutEvents", "eventList.1.member.eventType", "failed to satisfy constraint"]) {
    if (!rejectedText.includes(part)) fail(`the rejected request's row lacks ${part}: ${rejectedText}`);
  }

  // A flagged event, with its reason.
  done = putEvents([{ eventId: "dbg-flag", eventType: "rate", itemId: "item-3", sentAt: now, properties: '{"numberOfRatings": "12"}' }]);
  if (done.status !== 0) fail("put-events (flagged): " + done.stderr);
  const flagged = await page.waitForSelector('#flagged tr[data-event-id="dbg-flag"]', { timeout: 2000 })
    .catch(() => fail("the flagged event did not appear"));
  const flaggedText = await flagged.innerText();
  if (!flaggedText.includes("undeclaredProperty") || !flaggedText.includes("numberOfRatings")) {
    fail("the flagged event's row lacks its reason: " + flaggedText);
  }

  // A retry of the flagged event: dropped at the door as a repeat, so it is not counted flagged again.
  done = putEvents([{ eventId: "dbg-flag", eventType: "rate", itemId: "item-3", sentAt: now, properties: '{"numberOfRatings": "12"}' }]);
  if (done.status !== 0) fail("put-events (flagged retry): " + done.stderr);

  // Counts per tracker over the last minute.
  await page.waitForFunction((t) => {
    const r = document.querySelector(`#counts tr[data-tracking-id="${t}"][data-window="minute"]`);
    return r && r.cells[1].textContent === "3" && r.cells[2].textContent === "1" && r.cells[3].textContent === "1"
      && r.cells[4].textContent === "1";
  }, env.TRACKING_ID, { timeout: 5000 }).catch(async () => {
    const shown = await page.$eval(`#counts tr[data-tracking-id="${env.TRACKING_ID}"][data-window="minute"]`,
      (r) => [...r.cells].map((c) => c.textContent).join(" | ")).catch(() => "no row");
    fail("the counts did not show 3 stored, 1 duplicate, 1 rejected, 1 flagged: " + shown);
  });

  // The live tail's filter by event type.
  await page.fill("#f-type", "view");
  done = putEvents([{ eventId: "dbg-3", eventType: "click", sentAt: now }, { eventId: "dbg-4", eventType: "view", sentAt: now }]);
  if (done.status !== 0) fail("put-events (filter): " + done.stderr);
  await page.waitForSelector('#tail tr[data-event-id="dbg-4"]', { timeout: 2000 });
  if (await page.$('#tail tr[data-event-id="dbg-3"]')) fail("the event type filter let a click through");
  await page.fill("#f-type", "");

  // The history of the user, newest first.
  await page.selectOption("#h-tracker", env.TRACKING_ID);
  await page.fill("#h-id", "dbg-user");
  await page.click("#history-form button[type=submit]");
  await page.waitForSelector('#history tr[data-event-id="dbg-flag"]', { timeout: 5000 });
  const order = await page.$$eval("#history tbody tr", (rows) => rows.map((r) => r.getAttribute("data-event-id")));
  const expected = ["dbg-4", "dbg-3", "dbg-flag", "dbg-2", "dbg-1"];
  if (JSON.stringify(order) !== JSON.stringify(expected)) fail(`history ${JSON.stringify(order)}, expected ${JSON.stringify(expected)}`);

  await page.waitForFunction((t) => {
    const r = document.querySelector(`#counts tr[data-tracking-id="${t}"][data-window="minute"]`);
    return r && r.cells[1].textContent === "5";
  }, env.TRACKING_ID, { timeout: 5000 }).catch(() => fail("the counts did not reach 5 stored"));
  await page.screenshot({ path: env.SCREENSHOT, fullPage: true });
  console.log("screenshot: " + env.SCREENSHOT);

  // Signing out ends access.
  await page.click("#sign-out");
  await page.waitForSelector("#signin-form", { state: "visible", timeout: 5000 });
  const after = await page.evaluate(async () => (await fetch("/_interlog/ui/api/resources")).status);
  if (after !== 403) fail(`the API answered ${after} after signing out`);
  console.log("debugger checks passed");
} finally {
  await browser.close();
}
