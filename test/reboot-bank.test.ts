// Reboot's bank example (zod flavour), ported to fixtures/reboot-bank, end to end: in-process
// as Reboot's own test runs it, and served by `mend serve` to an ExternalContext.
import { describe, expect, test } from "vitest";
import { ExternalContext, Runtime, StateNotConstructed, type Context } from "mend";
import { Account, Bank } from "../fixtures/reboot-bank/src/api.js";
import app, { SINGLETON_BANK_ID } from "../fixtures/reboot-bank/src/main.js";
import { copyFixture, serve } from "./helpers/cli.js";
import { start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

/** Reboot's `performErroringWithdrawal`, as its test has it. */
async function performErroringWithdrawal(context: Context): Promise<void> {
  const [account] = await Account.open(context, "account-nodejs", {});
  await account.withdraw(context, { amount: 65 });
}

/** What every flow below checks, in-process or over HTTP. */
async function bankFlows(context: Context) {
  // Reboot's "Sign Up" test: a bank made by its constructor, then a customer signed up.
  const [bank] = await Bank.create(context, "bank-nodejs");
  await bank.signUp(context, { accountId: "test@reboot.dev", initialDeposit: 1 });
  expect(await Account.ref("test@reboot.dev").balance(context)).toEqual({ amount: 1 });

  // Reboot's "Withdraw Error Handling" test.
  const error = await performErroringWithdrawal(context).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(Account.WithdrawAborted);
  expect((error as InstanceType<typeof Account.WithdrawAborted>).error).toEqual({ type: "OverdraftError", amount: 65 });

  // The singleton that `initialize` made.
  const singleton = Bank.ref(SINGLETON_BANK_ID);
  await singleton.signUp(context, { accountId: "alice", initialDeposit: 10 });
  await singleton.signUp(context, { accountId: "bob", initialDeposit: 0 });
  await singleton.transfer(context, { fromAccountId: "alice", toAccountId: "bob", amount: 4 });
  expect(await singleton.accountBalances(context)).toEqual({
    balances: [
      { accountId: "alice", balance: 6 },
      { accountId: "bob", balance: 4 },
    ],
  });

  // An overdraft passes through the transfer as the bank's own declared error; nothing changes.
  const overdraft = await singleton.transfer(context, { fromAccountId: "bob", toAccountId: "alice", amount: 9 }).catch((e: unknown) => e);
  expect(overdraft).toBeInstanceOf(Bank.TransferAborted);
  expect((overdraft as InstanceType<typeof Bank.TransferAborted>).error).toEqual({ type: "OverdraftError", amount: 5 });

  // A transfer to an account never opened rolls back as a whole: alice keeps her money.
  const unopened = await singleton.transfer(context, { fromAccountId: "alice", toAccountId: "carol", amount: 1 }).catch((e: unknown) => e);
  expect(unopened).toBeInstanceOf(StateNotConstructed);
  expect((unopened as Error).message).toBe("Account('carol') has not been constructed: call one of its constructors first (Account.open).");
  expect(await singleton.accountBalances(context)).toEqual({
    balances: [
      { accountId: "alice", balance: 6 },
      { accountId: "bob", balance: 4 },
    ],
  });
  // Signing up twice constructs twice: refused, and the bank's list is unchanged.
  await expect(singleton.signUp(context, { accountId: "alice", initialDeposit: 1 })).rejects.toMatchObject({ name: "StateAlreadyConstructed" });
  expect(await singleton.allAccountIds(context)).toEqual({ accountIds: ["alice", "bob"] });
}

describe("Reboot's bank, ported", () => {
  test("in-process: sign-up, the overdraft test, transfers, and initialize's singleton", async () => {
    const rt = await start(app);
    await bankFlows(rt.context("test"));
  });

  test("initialize runs once per store: a second start does not construct the bank again", async () => {
    const directory = tempDir();
    const first = await Runtime.start(app, { directory });
    await Bank.ref(SINGLETON_BANK_ID).signUp(first.context(), { accountId: "alice", initialDeposit: 3 });
    await first.stop();
    const second = await start(app, { directory });
    expect(await Bank.ref(SINGLETON_BANK_ID).allAccountIds(second.context())).toEqual({ accountIds: ["alice"] });
  });

  test("over HTTP: mend serve on a copy of the fixture, called through ExternalContext", async () => {
    const { url } = await serve(copyFixture("reboot-bank"));
    await bankFlows(new ExternalContext({ url }));
  });
});
