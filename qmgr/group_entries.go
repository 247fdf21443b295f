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
			command: "create", object: "server", operands: []operand{newMemberName},
			attrs: []attrSpec{
				{name: "Address", syntax: "HOST:PORT", doc: "the new member's replication address", required: true, check: checkHostPort},
				{name: "Control", syntax: "HOST:PORT", doc: "the new member's control address for MOMs (default: its --listen, recorded when it joins)", check: checkHostPort},
				enumAttr("standby", "a standby replicates but never votes nor leads", "true", "false"),
			},
			usage: "create server NAME Address=HOST:PORT[,standby=true]", doc: "add a member to the server group and print its one-time join token",
			example: "create server s2 Address=10.0.0.2:15005",
		},
		entry{
			command: "set", object: "server", operands: []operand{oneMemberName},
			attrs: []attrSpec{enumAttr("standby", "true demotes a voter to standby, false promotes a standby to voter", "true", "false")},
			usage: "set server NAME standby=true|false", doc: "demote a group member to standby or promote a standby to voter (on the leader)",
			example: "set server s3 standby=true",
			validate: func(d *Directive, end int) error {
				if len(d.Attrs) == 0 {
					hint := ""
					for _, a := range serverAttrs {
						if strings.EqualFold(a.name, d.Names[0]) {
							hint = fmt.Sprintf("; %s is also a server attribute: set server %s=VALUE", d.Names[0], a.name)
						}
					}
					return syntaxErr(end, "set server %s needs standby=true|false (usage: set server NAME standby=true|false%s)", d.Names[0], hint)
				}
				return nil
			},
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

var (
	oneMemberName = operand{label: "member name", check: checkNodeName}
	newMemberName = operand{label: "member name", fresh: true, check: checkNodeName}
)

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

// runSetMember is set server NAME standby=true|false (runSetServer hands
// it the directives with a member name).
func runSetMember(ctx context.Context, s *Session, d Directive, out *bytes.Buffer) error {
	standby := d.Attrs[0].Value == "true"
	raw, err := s.call(ctx, admin.OpSetMember, admin.SetMemberArgs{Name: d.Names[0], Standby: &standby})
	if err != nil {
		return err
	}
	if s.JSON {
		return writeJSON(out, raw)
	}
	var mi admin.MemberInfo
	if err := decode(admin.OpSetMember, raw, &mi); err != nil {
		return err
	}
	if standby {
		fmt.Fprintf(out, "member %s is a standby: it replicates, never votes nor leads (role %s)\n", mi.Name, mi.Role)
	} else {
		fmt.Fprintf(out, "member %s is a voter: it votes and may lead (role %s)\n", mi.Name, mi.Role)
	}
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
