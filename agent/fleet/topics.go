package fleet

// Topics: otok/v1/dev/<id>/{state,status,event,cmd,reply,desired} and
// otok/v1/group/<g>/desired. Ids and group names are checked with ValidID,
// so they never contain '/', '+' or '#'.

const Root = "otok/v1/"

// DevTopic returns otok/v1/dev/<id>/<leaf>.
func DevTopic(id, leaf string) string { return Root + "dev/" + id + "/" + leaf }

// GroupTopic returns otok/v1/group/<g>/desired.
func GroupTopic(g string) string { return Root + "group/" + g + "/desired" }

// ScopeTopic returns the desired topic of a scope ("dev/<id>" or "group/<g>").
func ScopeTopic(scope string) string { return Root + scope + "/desired" }

// AllDev returns the wildcard otok/v1/dev/+/<leaf>.
func AllDev(leaf string) string { return Root + "dev/+/" + leaf }

// splitDevTopic returns id and leaf of otok/v1/dev/<id>/<leaf>.
func splitDevTopic(t string) (id, leaf string, ok bool) {
	const p = Root + "dev/"
	if len(t) <= len(p) || t[:len(p)] != p {
		return "", "", false
	}
	rest := t[len(p):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			return rest[:i], rest[i+1:], true
		}
	}
	return "", "", false
}
