"""Team sync: replicated state files, reconciliation (pure plan + executor), the loop."""
