package qmgr

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// The directives of a server group (docs/HA.md): create server, delete
// server. list server and print server show the group when there is one.
func init() {
	entries = append(entries,
		entry{
			command: "create", object: "server", operands: []operand{oneMemberName},
			attrs: []attrSpec{
				{name: "Address", syntax: "HOST:PORT", doc: "the new member's replication address", required: true, check: checkHostPort},
				{name: "Control", syntax: "HOST:PORT", doc: "the new member's control address for MOMs (default: its --listen, recorded when it joins)", check: checkHostPort},
				enumAttr("standby", "a standby replicates but never votes nor leads", "true", "false"),
			},
			usage: "create server NAME Address=HOST:PORT[,standby=true]", doc: "add a member to the server group and print its one-time join token",
			example: "create server s2 Address=10.0.0.2:15005",
		},
		entry{
			command: "delete", object: "server", operands: []operand{oneMemberName},
			usage: "delete server NAME", doc: "remove a member from the server group",
			example: "delete server s2",
		},
	)
	runners["create server"] = runCreateServer
	runners["delete server"] = runDeleteServer
}

var oneMemberName = operand{label: "member name", check: checkNodeName}

func checkHostPort(v string) (string, error) {
	i := strings.LastIndexByte(v, ':')
	if i <= 0 || i == len(v)-1 {
		return "", fmt.Errorf("want HOST:PORT")
	}
	if _, err := checkPort(v[i+1:]); err != nil {
		return "", err
	}
	return v, nil
}

func runCreateServer(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	args := admin.CreateServerArgs{Name: d.Names[0]}
	for _, a := range d.Attrs {
		switch a.Name {
		case "Address":
			args.Address = a.Value
		case "Control":
			args.Control = a.Value
		case "standby":
			args.Standby = strings.EqualFold(a.Value, "true")
		}
	}
	raw, err := s.call(ctx, admin.OpCreateServer, args)
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	var res admin.CreateServerResult
	if err := decode(admin.OpCreateServer, raw, &res); err != nil {
		return err
	}
	fmt.Fprintf(out, "member %s created; on its host run: momgate-server join --token TOKEN\n", res.Name)
	fmt.Fprintf(out, "token: %s\n", res.Token)
	fmt.Fprintf(out, "token expires: %s\n", res.TokenExpires.Format(time.RFC3339))
	return nil
}

func runDeleteServer(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	raw, err := s.call(ctx, admin.OpDeleteServer, admin.ServerArgs{Name: d.Names[0]})
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	fmt.Fprintf(out, "member %s removed from the group\n", d.Names[0])
	return nil
}
