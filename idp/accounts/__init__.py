"""The directory of accounts: lookup rules, passwords, second factors."""
