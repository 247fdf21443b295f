package member

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/hashicorp/go-hclog"
	"github.com/sirupsen/logrus"
)

// raftLogger returns an hclog.Logger for the raft library that writes
// through log: hclog's JSON lines are parsed back into logrus entries
// with their level, message and fields.
func raftLogger(log logrus.FieldLogger, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: level, JSONFormat: true,
		Output: &logWriter{log: log}})
}

type logWriter struct {
	log logrus.FieldLogger
}

var _ io.Writer = (*logWriter)(nil)

// Write takes one or more JSON lines from hclog.
func (w *logWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.log.WithField("component", "raft").Warn(string(line))
			continue
		}
		msg, _ := m["@message"].(string)
		lvl, _ := m["@level"].(string)
		f := logrus.Fields{"component": "raft"}
		for k, v := range m {
			if len(k) > 0 && k[0] != '@' {
				f[k] = v
			}
		}
		e := w.log.WithFields(f)
		switch lvl {
		case "trace", "debug":
			e.Debug(msg)
		case "warn":
			e.Warn(msg)
		case "error":
			e.Error(msg)
		default:
			e.Info(msg)
		}
	}
	return len(b), nil
}
