package auth

// SetCheckHook makes a call fn just before each password check, while the
// check's slot is held.
func SetCheckHook(a *Accounts, fn func()) { a.onCheck = fn }
