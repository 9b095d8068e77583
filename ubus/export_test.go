package ubus

// SetSocketCandidates replaces the paths FindSocket tries; the returned
// function restores them.
func SetSocketCandidates(paths ...string) (restore func()) {
	old := socketCandidates
	socketCandidates = paths
	return func() { socketCandidates = old }
}
