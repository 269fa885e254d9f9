// The dashboard in Debian's headless Chromium, driven by playwright-core (no downloaded
// browser): the overview updates live as the Rust side produces events, a reviewer signs in
// and confirms a narrative on the review desk, then releases the protected copy the takedown
// service held back after that confirmation. Screenshots go to <artifact-dir>.
//
// Usage: node tests/e2e/dashboard.mjs <dashboard-url> <artifact-dir>
// Env: E2E_USER, E2E_PASSWORD (a reviewer account), E2E_NARRATIVE (the item to confirm).
// Protocol with tests/dashboard_e2e.rs on stdout: `overview <n>` once the overview is live
// with n posts (the Rust side then produces more), `overview-changed <m>`, `decided <id>` (the
// Rust side then republishes the item confirmed, with a held copy), `held <the held line>`,
// `released <id>`.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const [url, artifacts] = process.argv.slice(2);
if (!url || !artifacts) {
  console.error("usage: node dashboard.mjs <dashboard-url> <artifact-dir>");
  process.exit(2);
}
const { E2E_USER: user, E2E_PASSWORD: password, E2E_NARRATIVE: narrative } = process.env;
mkdirSync(artifacts, { recursive: true });
const userDataDir = mkdtempSync(path.join(os.tmpdir(), "patroli-e2e-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1440, height: 1100 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(60_000);
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

async function count() {
  return Number(await page.textContent("#posts-scored"));
}

try {
  await page.goto(url + "/");
  await page.waitForFunction(() => document.getElementById("live-status").textContent === "live");
  await page.waitForFunction(() => !Number.isNaN(Number(document.getElementById("posts-scored").textContent)));
  const before = await count();
  console.log(`overview ${before}`);
  await page.waitForFunction(
    (n) => Number(document.getElementById("posts-scored").textContent) > n,
    before,
  );
  console.log(`overview-changed ${await count()}`);
  // Every chart has data on its canvas before the picture is taken.
  await page.waitForFunction(() =>
    Object.values(Chart.instances).length === 6 &&
    Object.values(Chart.instances).every((c) => c.data.datasets.some((d) => d.data.some((v) => v > 0))),
  );
  await page.screenshot({ path: path.join(artifacts, "overview.png"), fullPage: true });

  await page.goto(url + "/login");
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(url + "/review"), page.click("button[type=submit]")]);
  const item = page.locator(`#n-${narrative}`);
  await item.locator("mark").first().waitFor();
  await page.screenshot({ path: path.join(artifacts, "review.png"), fullPage: true });

  await item.locator("input[name=reason]").fill("Checked with KPU: these ballots are fake");
  await Promise.all([page.waitForURL(`${url}/review#n-${narrative}`), item.locator("button[value=confirm]").click()]);
  const decision = await page.locator(`#n-${narrative} .decision`).textContent();
  if (!decision.startsWith(`Confirmed by ${user} at `)) {
    throw new Error(`the page does not show the decision: ${decision}`);
  }
  await page.screenshot({ path: path.join(artifacts, "review-decided.png"), fullPage: true });
  console.log(`decided ${narrative}`);

  // The desk is server-rendered: reload until the held copy and its button show.
  const release = item.locator("button[value=release]");
  const deadline = Date.now() + 60_000;
  await page.goto(url + "/review");
  while ((await release.count()) === 0) {
    if (Date.now() > deadline) {
      throw new Error("the desk never offered to release a held copy");
    }
    await page.waitForTimeout(250);
    await page.reload();
  }
  console.log(`held ${(await item.locator(".held").textContent()).trim()}`);
  await page.screenshot({ path: path.join(artifacts, "review-held.png"), fullPage: true });
  await Promise.all([page.waitForURL(`${url}/review#n-${narrative}`), release.click()]);
  const released = await item.locator(".decision").textContent();
  if (!released.startsWith(`Confirmed by ${user} at `) || !released.endsWith(": release held copies")) {
    throw new Error(`the page does not show the release: ${released}`);
  }
  if ((await release.count()) !== 0 || (await item.locator(".held").count()) !== 0) {
    throw new Error("the page still offers to release after the release");
  }
  await page.screenshot({ path: path.join(artifacts, "review-released.png"), fullPage: true });
  if (errors.length) {
    throw new Error(`script errors on the pages: ${errors.join("; ")}`);
  }
  console.log(`released ${narrative}`);
} catch (e) {
  await page.screenshot({ path: path.join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
  console.error(e);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
