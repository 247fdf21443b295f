package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/momgate/momgate/keys"
)

var keyStates = []string{keys.StateNext.String(), keys.StateActive.String(), keys.StatePrevious.String(), keys.StateRetired.String()}

// KeyringCollectors export a keyring read at scrape time: the active key id
// (as a number and as an info label, for joins and alerts on change) and
// the number of keys in each state (a "next" or "previous" key means a
// rotation is under way).
func KeyringCollectors(load func() *keys.Keyring) []prometheus.Collector {
	active := func() *keys.Key {
		if r := load(); r != nil {
			return r.Active()
		}
		return nil
	}
	return []prometheus.Collector{
		NewGaugeFunc("active_key_id", "Numeric id of the active cluster key (0 when there is none yet).", "",
			func() map[string]float64 {
				if k := active(); k != nil {
					return One(float64(k.ID))
				}
				return One(0)
			}),
		NewGaugeFunc("active_key_info", "Always 1, labelled with the active cluster key id as `list key` shows it.", "key_id",
			func() map[string]float64 {
				if k := active(); k != nil {
					return map[string]float64{k.ID.String(): 1}
				}
				return nil
			}),
		NewGaugeFunc("keys", "Cluster keys held, by state (next, active, previous, retired).", "state",
			func() map[string]float64 {
				m := Enum("", keyStates)
				delete(m, "")
				if r := load(); r != nil {
					for _, k := range r.Keys() {
						m[k.State.String()]++
					}
				}
				return m
			}),
	}
}
