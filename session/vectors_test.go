package session

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// The test vectors of docs/PROTOCOL.md section 6.9. Keep both in step.
// The swap runs through the real code (ping.Sealer, Initiator, Respond) with
// fixed randomness and clocks, so every byte below is what a daemon sends.
const (
	vecClusterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	vecKeyID      = 0x0a1b2c3d
	vecInitNode   = "6ba7b8109dad11d180b400c04fd430c8"
	vecRespNode   = "6ba7b8119dad11d180b400c04fd430c8"
	vecInitTS     = 1764000000000000000
	vecRespTS     = 1764000000001000000
	vecInitRandom = "808182838485868788898a8b8c8d8e8f"
	vecInitNonce  = "404142434445464748494a4b4c4d4e4f5051525354555657"
	vecRespRandom = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	vecRespNonce  = "606162636465666768696a6b6c6d6e6f7071727374757677"
	vecInitShare  = "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"
	vecRespShare  = "505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f"
	// RFC 7748 section 6.1: Alice's and Bob's keys and their shared secret.
	vecInitEph  = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
	vecRespEph  = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
	vecInitPub  = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
	vecRespPub  = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
	vecEE       = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
	vecRekeyEph = "1112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30" // initiator, generation 1
	vecRekeyEpR = "9192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0" // responder

	// IM session: the initiator's minimum is auth (offers auth, encrypt),
	// the responder's encrypt (chooses encrypt).
	vecIMOffer  = "010106 00" + vecInitShare + vecInitPub
	vecIMAnswer = "010106 02" + vecRespShare + vecRespPub
	vecIMPing   = "4d470212000000b8 0a1b2c3d 404142434445464748494a4b4c4d4e4f5051525354555657" +
		"54b887f35465ff91077d0d352311eb1d8ac051637493539a6a31fd450904239016f9fd912a928412" +
		"ffb2f44c0adadaf19b6b82171085b49fdd5bb0e48e1f5d85da9ff8b25b6775008402b6ffec48aedc" +
		"c2f2301c10045e4c6c9e39ab852471666230f18ef0ac21fd91ec2cd5c237398216c3b48a5d41fe3c" +
		"b881a0482f784192f9695dfa3a7a7f3e0a3bbc5a 3c37cd6de7529fac685adca3403167ee"
	vecIMReply = "4d470213000000c8 0a1b2c3d 606162636465666768696a6b6c6d6e6f7071727374757677" +
		"751873e592cd92efebde37e4cdbdcd712a84678b6988b024501d2676957164e1e7f728a786e96789" +
		"7f3ba794367b54f9bd3c347de54a12b79a6617c05305e0375b3fa228e25d80eed1fcf5464f7b164a" +
		"0d154f367bb3b3fc0871b2341313edaed74083e63c3bbe1f09dd452b1f8f407413e5151fc27a5280" +
		"db38a5743ed5ef15a86343104ceac551afae5f477627979e2b10652aa4f6d87799f78f07" +
		"fc26a7c92de65a00743bb43db99ac34c"
	vecIMTranscript = "6d6f6d676174652073657373696f6e207631 02 01 01 06 02 0a1b2c3d 0a1b2c3d" +
		vecInitRandom + vecRespRandom + "187afca767ca0000 187afca767d94240" +
		"00000000000000000000ffff7f000002 00000000000000000000ffff7f000003" +
		vecInitNode + vecRespNode + vecInitPub + vecRespPub +
		"0000000000000000000000000000000000000000000000000000000000000000"
	vecIMTH  = "c9d307e73387f6a80bb3dedfc65b1c8c468b9bf634a2ddd7766ab0147b8d7f19"
	vecIMS0  = "6eb84c1ad222b60bb92e6ba970a3a51c4f9a47efaf5fb10e4ee5aaefe8974f13"
	vecIMI2R = "8c6f768dffe25c563cec9f53700934ca11ab9dc9b3ebe329d77b9d9ac1b569e6"
	vecIMR2I = "fa26629c39ec5654be9ad1906f31261b1b98c59e06c1278ca857ac7610da7ad8"

	// Records from the initiator under vecIMI2R, counters 0 and 1, of the
	// inner frame IMPoll{job "job.1", seq 1}; then the same frame as an auth
	// record under the same key, counter 0.
	vecInner       = "4d4702410000000f 00056a6f622e31 0000000000000001"
	vecRecord0     = "4d47026000000027 6f93885106fb76c68f8d33096bf445afaef7e4d957abd4 417435fc6edf8cb84c53d4f08b00a7f9"
	vecRecord1     = "4d47026000000027 0d65260fabdf70bfb89725d2e3967cff83422bf728fdbd 601c6ef158859968a1aed77c373e5749"
	vecAuthRecord0 = "4d47026000000027 " + vecInner + " ff18069599a8d446989851fc3040c3c9"

	// Rekey to generation 1 (encrypt).
	vecRekeyPubI  = "4d27bcee3135c4944b28d27dd809b07be10c35160d20131caa7e85575498d07c"
	vecRekeyPubR  = "9cced751b301bbd16c4fb8deddd82f18925d71ed90c844fa0158f845b0fa7f4b"
	vecRekeyDH    = "74dbc515e4219fc7f2bd23973674cdce6af633db423909b2343653f9541a0221"
	vecRekeyFrame = "4d47026100000028 0000000000000001 " + vecRekeyPubI
	vecSwitch     = "4d47026200000008 0000000000000001"
	vecS1         = "01260e82657cefa0507e37ec77c828a7e8a2b6fa03b64145482532c04360cb58"
	vecI2R1       = "e2588b200d8d17fe964807c5ed81d11777b74bf9acd464257ba22e257d786ea1"
	vecR2I1       = "5572bf5f56f5220946f2cce3a85966389ca91dd63572ce2c5994649cacf4fe44"
	vecS1Auth     = "e8cd20a742fa06799a028b886a5d5c132aa28b037b469ccfb3652dffc54cb5cd" // NextSecret(S0) without DH

	// Control session: the same PING inputs, channel control (offers encrypt
	// only); MOM identity private key a0..bf, server's e0..ff; binding hash
	// SHA-256 of "ServerHello" "Hello" "Welcome" (the frames, in a daemon).
	vecMomIdentity    = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	vecServerIdentity = "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
	vecMomPub         = "605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c"
	vecServerPub      = "736845d54e87de09d6bb114aa7042c50a4a015bd9901d1a0026f5956533a1519"
	vecSS             = "51a02c31bd599b54edea2134e80353bfca478ae1f0fb1ba591fbf897b05c405f"
	vecBindingHash    = "817fe73272ef1b3d743faed8824db6f578f14e2a700bea50822a23c014166a58"
	vecCtlTH          = "8646cdfd3c5e610a7859baaee8a6f55ea2977d22fd98e3f5a7484900c601ff5a"
	vecCtlS0          = "5b634d2efed74a5dfa1a8103f02b5e63f9b18b9e93071b12d66a1314cfa7d848"
	vecCtlI2R         = "29c7732f72283016c87556100ec30aedf92f7ddafed803d544aa1d688f1024a6"
	vecCtlR2I         = "9d5d3e71091dc3f6b46628365a20a59feffc407332a4292d8e7197180dca9e28"
)

// vecPeer is a swap side whose randomness and clock are the vector's.
func vecPeer(t *testing.T, a, node, random, nonce string, ts int64) *peer {
	t.Helper()
	keys := newTestKeys(t, vecKeyID, mustHex(t, vecClusterKey))
	clock := &fakeClock{t: time.Unix(0, ts)}
	p := newPeer(t, keys, a, 0, clock)
	copy(p.node[:], mustHex(t, node))
	p.sealer.Node = p.node
	p.sealer.Rand = &fixedRand{b: mustHex(t, random+nonce)}
	return p
}

type vecSwap struct {
	a, b           *peer
	ping, reply    []byte
	sa, sb         *Session
	offer          Offer
	resInit, resRe ping.Result
}

// runVecSwap runs the vector swap on channel ch; extraI and extraR are the
// randomness the sessions draw afterwards (rekey ephemerals).
func runVecSwap(t *testing.T, ch Channel, bi, br *Binding, extraI, extraR string) *vecSwap {
	t.Helper()
	v := &vecSwap{
		a: vecPeer(t, "127.0.0.2", vecInitNode, vecInitRandom, vecInitNonce, vecInitTS),
		b: vecPeer(t, "127.0.0.3", vecRespNode, vecRespRandom, vecRespNonce, vecRespTS),
	}
	ca := Config{Channel: ch, Min: Auth, Rand: &fixedRand{b: mustHex(t, vecInitShare+vecInitEph+extraI)}, Binding: bi, ExpectNode: v.b.node}
	cb := Config{Channel: ch, Min: Encrypt, Rand: &fixedRand{b: mustHex(t, vecRespShare+vecRespEph+extraR)}, Binding: br, ExpectNode: v.a.node}
	in, frame := sessionPing(t, v.a, v.b, ca)
	v.offer, v.ping = in.offer, frame
	sent := bytes.Clone(v.ping)
	var err error
	if v.reply, v.sb, err = Respond(nil, v.ping, v.b.sealer, v.b.verif, v.a.addr, v.b.addr, cb, v.b.clock.Now(), &v.resRe); err != nil {
		t.Fatal(err)
	}
	v.ping = sent
	reply := bytes.Clone(v.reply)
	if v.sa, err = in.Finish(reply, v.a.verif, v.b.addr, v.a.addr, v.a.clock.Now(), &v.resInit); err != nil {
		t.Fatal(err)
	}
	return v
}

func checkHex(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if w := mustHex(t, want); !bytes.Equal(got, w) {
		t.Errorf("%s:\n got  %x\n want %x", what, got, w)
	}
}

func TestVectorX25519(t *testing.T) {
	for _, c := range []struct{ priv, pub string }{{vecInitEph, vecInitPub}, {vecRespEph, vecRespPub},
		{vecRekeyEph, vecRekeyPubI}, {vecRekeyEpR, vecRekeyPubR}, {vecMomIdentity, vecMomPub}, {vecServerIdentity, vecServerPub}} {
		e, err := newEphemeral(&fixedRand{b: mustHex(t, c.priv)})
		if err != nil {
			t.Fatal(err)
		}
		checkHex(t, "public key of "+c.priv, e.pub[:], c.pub)
	}
	for _, c := range []struct{ priv, pub, want string }{{vecInitEph, vecRespPub, vecEE}, {vecRespEph, vecInitPub, vecEE},
		{vecRekeyEph, vecRekeyPubR, vecRekeyDH}, {vecRekeyEpR, vecRekeyPubI, vecRekeyDH}} {
		priv, pub := hex32(t, c.priv), hex32(t, c.pub)
		s, err := shared(&priv, &pub)
		if err != nil {
			t.Fatal(err)
		}
		checkHex(t, "x25519", s[:], c.want)
	}
}

func TestVectorIMSwap(t *testing.T) {
	v := runVecSwap(t, ChannelIM, nil, nil, vecRekeyEph, vecRekeyEpR)
	var ext Ext
	v.offer.Encode(&ext)
	checkHex(t, "offer", ext[:], vecIMOffer)
	checkHex(t, "SessionPing", v.ping, vecIMPing)
	checkHex(t, "SessionReply", v.reply, vecIMReply)
	if v.sa.Protection() != Encrypt || v.sb.Protection() != Encrypt {
		t.Fatalf("protections %s, %s", v.sa.Protection(), v.sb.Protection())
	}
	a := Answer{Channel: ChannelIM, Offered: OfferMask(Auth), Chosen: Encrypt, Share: hex32(t, vecRespShare), Ephemeral: hex32(t, vecRespPub)}
	a.Encode(&ext)
	checkHex(t, "answer", ext[:], vecIMAnswer)

	initPub, respPub := hex32(t, vecInitPub), hex32(t, vecRespPub)
	tr := newTranscript(ChannelIM, OfferMask(Auth), Encrypt, &v.resRe, &v.resInit, &initPub, &respPub, nil)
	checkHex(t, "transcript", tr.Append(nil), vecIMTranscript)
	th := tr.Hash()
	checkHex(t, "TH", th[:], vecIMTH)
	ee := hex32(t, vecEE)
	is, rs := hex32(t, vecInitShare), hex32(t, vecRespShare)
	s0 := InitialSecret(&th, &is, &rs, &ee, nil)
	checkHex(t, "S0", s0[:], vecIMS0)
	checkHex(t, "S0 of the initiator's session", v.sa.m.secret[:], vecIMS0)
	checkHex(t, "S0 of the responder's session", v.sb.m.secret[:], vecIMS0)
	i2r, r2i := DirectionKeys(&s0)
	checkHex(t, "K i2r", i2r[:], vecIMI2R)
	checkHex(t, "K r2i", r2i[:], vecIMR2I)

	// Records: the initiator's session seals exactly the vector records and
	// the responder's opens them.
	now := v.a.clock.Now()
	inner := mustHex(t, vecInner)
	if m, err := proto.Unmarshal(inner); err != nil || m.(*proto.IMPoll).Job != "job.1" {
		t.Fatalf("inner frame: %v %v", m, err)
	}
	for i, want := range []string{vecRecord0, vecRecord1} {
		rec, err := v.sa.SealFrame(nil, inner, now)
		if err != nil {
			t.Fatal(err)
		}
		checkHex(t, "record", rec, want)
		f, out, err := v.sb.OpenRecord(rec, nil, now)
		if err != nil || !bytes.Equal(f, inner) || len(out) != 0 {
			t.Fatalf("open record %d: %x %x %v", i, f, out, err)
		}
	}
	key := hex32(t, vecIMI2R)
	auth := sender{prot: Auth}
	auth.install(0, &key)
	checkHex(t, "auth record", auth.seal(nil, inner), vecAuthRecord0)

	// Rekey at 120 s: the initiator's Rekey, the responder's Rekey and
	// Switch, the initiator's Switch; both end at S1.
	later := now.Add(DefaultRekeyAfterTime)
	recs, err := v.sa.Tick(nil, later)
	if err != nil {
		t.Fatal(err)
	}
	f, back, err := v.sb.OpenRecord(recs, nil, later)
	if err != nil || f != nil {
		t.Fatalf("responder opening the rekey: %x %v", f, err)
	}
	for len(back) > 0 {
		n, _ := ParseRecordHeader(back, 0)
		var out []byte
		if _, out, err = v.sa.OpenRecord(back[:n], nil, later); err != nil {
			t.Fatal(err)
		}
		back = back[n:]
		if len(out) > 0 {
			if _, _, err := v.sb.OpenRecord(out, nil, later); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v.sa.m.Generation() != 1 || v.sb.m.Generation() != 1 {
		t.Fatalf("generations %d, %d after the rekey", v.sa.m.Generation(), v.sb.m.Generation())
	}
	checkHex(t, "S1 (initiator)", v.sa.m.secret[:], vecS1)
	checkHex(t, "S1 (responder)", v.sb.m.secret[:], vecS1)
	pi, pr, dh := hex32(t, vecRekeyPubI), hex32(t, vecRekeyPubR), hex32(t, vecRekeyDH)
	s1 := NextSecret(&s0, 1, &pi, &pr, &dh)
	checkHex(t, "S1", s1[:], vecS1)
	i2r1, r2i1 := DirectionKeys(&s1)
	checkHex(t, "K i2r 1", i2r1[:], vecI2R1)
	checkHex(t, "K r2i 1", r2i1[:], vecR2I1)
	checkHex(t, "Rekey frame", AppendControl(nil, &Control{Type: RekeyType, Gen: 1, Ephemeral: pi}), vecRekeyFrame)
	checkHex(t, "Switch frame", AppendControl(nil, &Control{Type: SwitchType, Gen: 1}), vecSwitch)
	var zero [32]byte
	s1a := NextSecret(&s0, 1, &zero, &zero, nil)
	checkHex(t, "S1 under auth", s1a[:], vecS1Auth)

	// The first record after the rekey is sealed under K i2r 1, counter 0.
	rec, err := v.sa.SealFrame(nil, inner, later)
	if err != nil {
		t.Fatal(err)
	}
	k1 := hex32(t, vecI2R1)
	ref := sender{prot: Encrypt}
	ref.install(1, &k1)
	if want := ref.seal(nil, inner); !bytes.Equal(rec, want) {
		t.Fatalf("first record of generation 1:\n got  %x\n want %x", rec, want)
	}
}

func TestVectorControlSwap(t *testing.T) {
	mom, srv := hex32(t, vecMomIdentity), hex32(t, vecServerIdentity)
	momPub, srvPub := hex32(t, vecMomPub), hex32(t, vecServerPub)
	hs := [][]byte{[]byte("ServerHello"), []byte("Hello"), []byte("Welcome")}
	bm, err := NewBinding(&mom, &srvPub, hs...)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := NewBinding(&srv, &momPub, hs...)
	if err != nil {
		t.Fatal(err)
	}
	checkHex(t, "ss (MOM)", bm.Static[:], vecSS)
	checkHex(t, "ss (server)", bs.Static[:], vecSS)
	checkHex(t, "binding hash", bm.Hash[:], vecBindingHash)
	v := runVecSwap(t, ChannelControl, bm, bs, "", "")
	var ext Ext
	v.offer.Encode(&ext)
	checkHex(t, "control offer", ext[:], "010204 00"+vecInitShare+vecInitPub)
	initPub, respPub := hex32(t, vecInitPub), hex32(t, vecRespPub)
	tr := newTranscript(ChannelControl, 1<<Encrypt, Encrypt, &v.resRe, &v.resInit, &initPub, &respPub, bm)
	th := tr.Hash()
	checkHex(t, "control TH", th[:], vecCtlTH)
	checkHex(t, "control S0 (MOM)", v.sa.m.secret[:], vecCtlS0)
	checkHex(t, "control S0 (server)", v.sb.m.secret[:], vecCtlS0)
	s0 := hex32(t, vecCtlS0)
	i2r, r2i := DirectionKeys(&s0)
	checkHex(t, "control K i2r", i2r[:], vecCtlI2R)
	checkHex(t, "control K r2i", r2i[:], vecCtlR2I)
}

// TestVectorsInProtocolDoc: the vectors printed in docs/PROTOCOL.md section
// 6.9 are the ones this file checks (the annotated frame dumps excepted:
// their annotations interleave the bytes).
func TestVectorsInProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte("### 6.9 Test vectors"))
	if i < 0 {
		t.Fatal("PROTOCOL.md has no section 6.9")
	}
	flat := strings.Join(strings.Fields(string(doc[i:])), "")
	for name, v := range map[string]string{
		"offer": vecIMOffer, "answer": vecIMAnswer,
		"TH": vecIMTH, "S0": vecIMS0, "K_I2R": vecIMI2R, "K_R2I": vecIMR2I, "ee": vecEE,
		"record 0": vecRecord0, "record 1": vecRecord1, "auth record": vecAuthRecord0,
		"Rekey": vecRekeyFrame, "Switch": vecSwitch, "S1": vecS1, "K_I2R 1": vecI2R1, "K_R2I 1": vecR2I1,
		"S1 auth": vecS1Auth, "ss": vecSS, "binding": vecBindingHash, "control TH": vecCtlTH,
		"control S0": vecCtlS0, "control K_I2R": vecCtlI2R, "control K_R2I": vecCtlR2I,
		"MOM public key": vecMomPub, "server public key": vecServerPub,
	} {
		if !strings.Contains(flat, strings.Join(strings.Fields(v), "")) {
			t.Errorf("PROTOCOL.md section 6.9 lacks the %s vector", name)
		}
	}
}
