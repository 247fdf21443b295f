package rotation

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// BenchmarkRotationCore is a full rotation (distribute, acknowledge,
// activate, retire) for N nodes without sockets or disks: the machine, the
// wrapping of the key for each node and its unwrapping on the node, every
// frame encoded and decoded, every MOM keyring transition, every record
// and keyring encoded for persistence. It is the CPU floor under the
// loopback benchmark in package server.
//
//	go test -run '^$' -bench RotationCore -benchtime 5x ./rotation
func BenchmarkRotationCore(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { benchCore(b, n) })
	}
}

type coreNode struct {
	id       proto.NodeID
	srvWrap  *keys.Wrapper // server side, precomputed at the node's first Welcome
	nodeWrap *keys.Wrapper // node side, precomputed once
	ring     *keys.Keyring
}

func benchCore(b *testing.B, n int) {
	srvPub, srvPriv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	k, _ := keys.NewKey(rand.Reader, time.Now(), nil)
	k.State = keys.StateActive
	ring, _ := keys.NewKeyring().WithKey(k)
	nodes := make([]coreNode, n)
	byID := make(map[proto.NodeID]*coreNode, n)
	ids := make([]proto.NodeID, n)
	for i := range nodes {
		pub, priv, err := box.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		nd := &nodes[i]
		rand.Read(nd.id[:])
		nd.srvWrap = keys.NewWrapper(pub, srvPriv)
		nd.nodeWrap = keys.NewWrapper(srvPub, priv)
		nd.ring = ring
		byID[nd.id] = nd
		ids[i] = nd.id
	}
	now := time.Now()
	m, _, err := Restore(rand.Reader, Params{Grace: time.Second, Timeout: time.Minute}, Record{}, ring, ids, now)
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range ids {
		m.Connected(id, []keys.KeyID{k.ID}, k.ID, now)
	}
	var wire, disk int64
	buf := make([]byte, 0, 256)
	var exec func(acts []Action)
	exec = func(acts []Action) {
		for _, a := range acts {
			switch a := a.(type) {
			case SaveRecord:
				data, err := EncodeRecord(a.Record)
				if err != nil {
					b.Fatal(err)
				}
				disk += int64(len(data))
			case SaveRing:
				data, err := keys.EncodeKeyring(a.Ring)
				if err != nil {
					b.Fatal(err)
				}
				disk += int64(len(data))
			case SendUpdate:
				for _, id := range a.To {
					nd := byID[id]
					wk, err := nd.srvWrap.Wrap(rand.Reader, a.Key, keys.StateNext)
					if err != nil {
						b.Fatal(err)
					}
					buf = proto.AppendFrame(buf[:0], &proto.KeyUpdate{Rotation: a.Seq, Key: proto.WrappedKey{
						KeyID: uint32(wk.ID), State: uint8(wk.State), Nonce: wk.Nonce, Sealed: wk.Sealed}})
					wire += int64(len(buf))
					msg, err := proto.Unmarshal(buf)
					if err != nil {
						b.Fatal(err)
					}
					u := msg.(*proto.KeyUpdate)
					key, err := nd.nodeWrap.Unwrap(keys.WrappedKey{ID: keys.KeyID(u.Key.KeyID), State: keys.State(u.Key.State),
						Nonce: u.Key.Nonce, Sealed: u.Key.Sealed}, now)
					if err != nil {
						b.Fatal(err)
					}
					if nd.ring, _, err = ApplyUpdate(nd.ring, key); err != nil {
						b.Fatal(err)
					}
					buf = proto.AppendFrame(buf[:0], &proto.KeyAck{Rotation: u.Rotation, KeyID: u.Key.KeyID})
					wire += int64(len(buf))
					msg, err = proto.Unmarshal(buf)
					if err != nil {
						b.Fatal(err)
					}
					ack := msg.(*proto.KeyAck)
					more, err := m.Ack(id, ack.Rotation, keys.KeyID(ack.KeyID), true, now)
					if err != nil {
						b.Fatal(err)
					}
					exec(more)
				}
			case SendActivate, SendRetire:
				var to []proto.NodeID
				var frame proto.Message
				if act, ok := a.(SendActivate); ok {
					to, frame = act.To, &proto.KeyActivate{Rotation: act.Seq, KeyID: uint32(act.Key)}
				} else {
					ret := a.(SendRetire)
					to, frame = ret.To, &proto.KeyRetire{Rotation: ret.Seq, KeyID: uint32(ret.Key)}
				}
				for _, id := range to {
					nd := byID[id]
					buf = proto.AppendFrame(buf[:0], frame)
					wire += int64(len(buf))
					msg, err := proto.Unmarshal(buf)
					if err != nil {
						b.Fatal(err)
					}
					switch v := msg.(type) {
					case *proto.KeyActivate:
						nd.ring, _, err = ApplyActivate(nd.ring, keys.KeyID(v.KeyID))
					case *proto.KeyRetire:
						nd.ring, _, err = ApplyRetire(nd.ring, keys.KeyID(v.KeyID))
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		acts, err := m.Start("bench", now)
		if err != nil {
			b.Fatal(err)
		}
		exec(acts)
		if m.Info().Phase != Grace {
			b.Fatalf("phase %s after every ack", m.Info().Phase)
		}
		now = now.Add(2 * time.Second)
		acts, err = m.Tick(now)
		if err != nil {
			b.Fatal(err)
		}
		exec(acts)
		if m.Info().Phase != Idle || m.Ring().Len() != 1 {
			b.Fatalf("phase %s, %d keys after the grace period", m.Info().Phase, m.Ring().Len())
		}
	}
	b.StopTimer()
	for i := range nodes {
		if nodes[i].ring.Len() != 1 || nodes[i].ring.Active().ID != m.Ring().Active().ID {
			b.Fatalf("node %d did not converge", i)
		}
	}
	b.ReportMetric(float64(wire)/float64(b.N), "wire-B/rotation")
	b.ReportMetric(float64(disk)/float64(b.N), "persisted-B/rotation")
}
