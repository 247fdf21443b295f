package server

import (
	"fmt"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/statecheck"
)

// The server's fail-closed recoveries from a loss found at start
// (docs/SECURITY.md section 7.2; the verdict is statecheck.Judge's):
//
//   - deny.json lost: a key rotation starts at once and no DenySet is sent
//     until it has completed, since a DenySet without the lost entries
//     would make every MOM lift them. Once the old keys are retired no
//     deleted node holds a key any MOM accepts. deny.json is not written
//     meanwhile, so a restart before then recovers the same way.
//   - rotation.json lost: a key rotation starts at once (a deleted node's
//     rotation may have been queued in the lost record).
//
// Registry, identity and keyring losses refuse the start instead.

// recoverState takes the verdict's recovery steps, creates the files of a
// first start (a directory of an older version) and writes the manifest.
// It runs in New, after the rotor is restored, before the server listens.
func (s *Server) recoverState() error {
	st := s.base.State
	var reasons []string
	if st.Has(statecheck.StepRotateWithholdDeny) {
		s.denyWithheld.Store(true)
		reasons = append(reasons, "deny list lost")
	}
	if st.Has(statecheck.StepRotateNow) {
		reasons = append(reasons, "rotation record lost")
	}
	if len(reasons) > 0 {
		info, err := s.rot.rotate(joinReasons(reasons))
		if err != nil {
			return fmt.Errorf("recover from state loss: %w", err)
		}
		s.log.WithField("rotation", info.Seq).Error("state loss: key rotation started; " + s.withheldNote())
	}
	// deny.json and deny.journal of a first start are written by
	// loadDenyList's store; a lost list is not written until its
	// recovery completes.
	err := st.CreateDefault(rotationFile, func() error { return s.rot.persistWhole("write " + rotationFile) })
	if err != nil {
		return err
	}
	for _, f := range []string{journalFile, rotationJournalFile, denyJournalFile} {
		if f == denyJournalFile && s.denyWithheld.Load() {
			continue
		}
		if st.Absent(f) {
			return fmt.Errorf("state journal %s missing after open", f)
		}
	}
	return st.SyncManifest(true)
}

func (s *Server) withheldNote() string {
	if !s.denyWithheld.Load() {
		return "the lost record's rotation runs again"
	}
	return "no DenySet is sent until it completes (MOMs keep their deny lists)"
}

func joinReasons(rs []string) string {
	out := rs[0]
	for _, r := range rs[1:] {
		out += "; " + r
	}
	return out
}

// rotationIdle is called by the rotor when a rotation completed and none
// is queued. A deny list withheld since a loss is sent again: every key a
// deleted node could hold is retired now.
func (s *Server) rotationIdle() {
	if !s.denyWithheld.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denyWithheld.Store(false)
	if err := s.writeDenyList(); err != nil {
		s.log.WithError(err).Error("persist the deny list after the recovery rotation")
	}
	frame := proto.Marshal(s.denySet())
	for _, c := range s.conns {
		if keyed(c) {
			s.enqueueLocked(c, pushItem{pushDeny, frame})
		}
	}
	s.log.WithField("entries", len(s.denyEntries())).Warn("deny list recovered: the key rotation after its loss completed; DenySet sent to every MOM")
}
