package fleet

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Desired state comes from the device's own document and one per
// configured group, each retained on its topic. A document is accepted only
// if it verifies, names the scope of the topic it came on, and is newer than
// the last one accepted for that scope. The accepted documents are merged
// (groups in configured order, then the device's own; a later scope's item
// replaces an earlier one of the same name) and handed to the agent.

func (s *Session) handleDesired(topic string, b []byte) {
	scope := strings.TrimSuffix(strings.TrimPrefix(topic, Root), "/desired")
	if len(b) == 0 {
		// A cleared retained message. Clearing is not signed, so it never
		// removes anything: undeploying is a new, empty document.
		return
	}
	d, err := s.openDesired(scope, b)
	if err != nil {
		s.logf("fleet %s: desired %s rejected (%s): %v", s.cfg.DeviceID, scope, CodeOf(err), err)
		s.emit(Event{Kind: "reject", Msg: truncate(fmt.Sprintf("desired %s: %v", scope, err), 512)})
		s.dmu.Lock()
		r := s.reached[scope]
		r.Errors = []ItemError{{Item: "doc", Code: CodeOf(err), Msg: truncate(err.Error(), 256)}}
		s.reached[scope] = r
		s.dmu.Unlock()
		s.markDirty()
		return
	}
	if d == nil {
		return // the version already applied, redelivered
	}
	select {
	case s.applyCh <- struct{}{}:
	default:
	}
}

func (s *Session) openDesired(scope string, b []byte) (*Desired, error) {
	if len(b) > MaxDesiredSize {
		return nil, &Error{Code: CodeTooLarge, Msg: fmt.Sprintf("%d bytes, limit %d", len(b), MaxDesiredSize)}
	}
	p, err := s.cfg.Verified.open(b, CtypeDesired, s.cfg.Keys)
	if err != nil {
		return nil, err
	}
	d, err := DecodeDesired(p)
	if err != nil {
		return nil, err
	}
	if d.Scope != scope {
		return nil, &Error{Code: CodeUnauthorized, Msg: fmt.Sprintf("document for %q published on %q", d.Scope, scope)}
	}
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if cur := s.docs[scope]; cur != nil {
		if d.Version == cur.Version {
			return nil, nil
		}
		if d.Version < cur.Version {
			return nil, &Error{Code: CodeReplay, Msg: fmt.Sprintf("version %d is older than %d, already accepted", d.Version, cur.Version)}
		}
	}
	if floor := s.floor[scope]; d.Version <= floor && s.docs[scope] == nil {
		// After a restart: the retained document of the version we had
		// reached is applied again; older ones are replays.
		if d.Version < floor {
			return nil, &Error{Code: CodeReplay, Msg: fmt.Sprintf("version %d is older than %d, accepted before", d.Version, floor)}
		}
	}
	s.docs[scope] = d
	if d.Version > s.floor[scope] {
		s.floor[scope] = d.Version
		s.saveVersionsLocked()
	}
	r := s.reached[scope]
	r.Applying = d.Version
	s.reached[scope] = r
	return d, nil
}

// applyLoop hands the merged documents to the agent, one apply at a time;
// documents arriving meanwhile are merged into the next apply.
func (s *Session) applyLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.applyCh:
		}
		s.applyOnce(ctx)
	}
}

// put replaces the item called name in list, keeping its place (a later
// scope overrides an earlier one), or appends v; at maps names to places.
func put[T any](list []T, at map[string]int, name string, v T) []T {
	if i, ok := at[name]; ok {
		list[i] = v
		return list
	}
	at[name] = len(list)
	return append(list, v)
}

func (s *Session) applyOnce(ctx context.Context) {
	scopes := make([]string, 0, len(s.cfg.Groups)+1)
	for _, g := range s.cfg.Groups {
		scopes = append(scopes, "group/"+g)
	}
	scopes = append(scopes, "dev/"+s.cfg.DeviceID)
	s.dmu.Lock()
	docs := make(map[string]*Desired, len(s.docs))
	for k, v := range s.docs {
		docs[k] = v
	}
	s.dmu.Unlock()

	owner := map[string]string{} // item → scope that provides it
	var imgs []ImageRef
	var ctrs []ContainerSpec
	iIdx, cIdx := map[string]int{}, map[string]int{}
	for _, sc := range scopes {
		d := docs[sc]
		if d == nil {
			continue
		}
		for _, im := range d.Images {
			owner["image/"+im.Name] = sc
			imgs = put(imgs, iIdx, im.Name, im)
		}
		for _, c := range d.Containers {
			owner["container/"+c.Name] = sc
			ctrs = put(ctrs, cIdx, c.Name, c)
		}
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	errs := func() (errs []ItemError) {
		defer func() {
			if p := recover(); p != nil {
				errs = []ItemError{{Item: "doc", Code: CodeInternal, Msg: fmt.Sprintf("panic: %v", p)}}
			}
		}()
		return s.agent.Apply(actx, imgs, ctrs)
	}()
	cancel()
	if ctx.Err() != nil {
		return
	}
	per := map[string][]ItemError{}
	for _, e := range errs {
		sc := owner[e.Item]
		if sc == "" {
			for _, x := range scopes { // not attributable: every applied scope
				if docs[x] != nil {
					per[x] = append(per[x], e)
				}
			}
			continue
		}
		per[sc] = append(per[sc], e)
		s.emit(Event{Kind: "error", Container: strings.TrimPrefix(e.Item, "container/"), Msg: truncate(fmt.Sprintf("desired %s: %s: %s", sc, e.Item, e.Msg), 512)})
	}
	s.dmu.Lock()
	for sc, d := range docs {
		r := Reached{Version: d.Version, Errors: per[sc]}
		if cur := s.docs[sc]; cur != nil && cur.Version != d.Version {
			r.Applying = cur.Version // a newer one came in meanwhile
		}
		s.reached[sc] = r
	}
	s.dmu.Unlock()
	s.markDirty()
}

// loadVersions reads VersionsFile (scope → version, CBOR).
func (s *Session) loadVersions() {
	s.floor = map[string]uint64{}
	if s.cfg.VersionsFile == "" {
		return
	}
	b, err := os.ReadFile(s.cfg.VersionsFile)
	if err != nil || len(b) > 64<<10 {
		return
	}
	var m map[string]uint64
	if decMode.Unmarshal(b, &m) == nil {
		for k, v := range m {
			if scopeRE.MatchString(k) {
				s.floor[k] = v
			}
		}
	}
}

// saveVersionsLocked writes VersionsFile atomically (dmu held).
func (s *Session) saveVersionsLocked() {
	if s.cfg.VersionsFile == "" {
		return
	}
	b, err := encMode.Marshal(s.floor)
	if err != nil {
		return
	}
	tmp := s.cfg.VersionsFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		s.logf("fleet %s: versions: %v", s.cfg.DeviceID, err)
		return
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.cfg.VersionsFile)
	}
	if err != nil {
		s.logf("fleet %s: versions: %v", s.cfg.DeviceID, err)
	}
}
