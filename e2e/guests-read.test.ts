// A deployment that lets guests read only (GUESTS=read), against the real
// room: a guest's message is refused and comes back to the box with a
// notice, while a user the host signed in posts and the guest reads it.

import { expect, test } from "vitest";
import { mintToken } from "../scripts/mint.ts";
import { eventually } from "./support/chat.ts";
import { newRoom, useHarness } from "./support/harness.ts";

const SECRET = "e2e-guests-read-jwt-secret-of-at-least-32-bytes";
const h = useHarness({ GUESTS: "read", AUTH_JWT_SECRET: SECRET });

test("a guest may read but not write: a refused message comes back to the box with a notice", async () => {
  const room = newRoom();
  const guest = await h.person(room, "Guest");
  const auth = await mintToken(SECRET, { sub: "bob", name: "Bob", roles: [], rooms: [], minutes: 60 });
  const bob = await h.person(room, "Bob", { auth });
  await bob.send("members talk here");
  await guest.waitForMessage("members talk here");

  await guest.send("may I?");
  await eventually(
    "the refusal was never shown",
    async () =>
      (await guest.page.locator("#notice").textContent()) ===
      "You can read this room but not write in it. Sign in through the site that sent you here.",
  );
  expect(await guest.page.locator("#pending > *").count()).toBe(0);
  expect(await guest.page.locator("#message").inputValue()).toBe("may I?");
  // The room kept nothing of it: Bob's next message follows his first.
  await bob.send("still only members");
  await guest.waitForMessage("still only members");
  expect((await guest.messages()).map((m) => m.text)).toEqual(["members talk here", "still only members"]);
  expect((await bob.messages()).map((m) => m.text)).toEqual(["members talk here", "still only members"]);
});
