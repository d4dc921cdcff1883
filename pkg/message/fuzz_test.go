package message

import (
	"testing"
	"time"
)

// FuzzDecodeBag checks that DecodeBag never panics and that what it
// decodes encodes to a canonical bag that decodes back to the same
// message.
func FuzzDecodeBag(f *testing.F) {
	for _, s := range []string{
		"",
		"%24.mid=msg-abc&%24.cid=corr-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&sp%20ace=a%2Fb%26c",
		"%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false",
		"iothub-ack=Full&propName=PropValue&DeviceInfo=smokeTest&%24.to=%2Fdevices%2FmyDeviceId%2Fmessages%2FdeviceBound&%24.cid&%24.uid",
		"$.ct=application%2Fjson%3Bcharset%3Dutf-8",
		"prop1&prop2=&prop3=a%20string",
		"a=1+2&&a&b=c=d",
		"%24.exp=2021-04-21T13:30:16.1234567+02:00&%24.ctime=2021-04-21T11:30:16",
		"%24.diagid=x&%G1",
		"=x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, bag string) {
		m, err := DecodeBag(bag)
		if err != nil {
			if m != nil {
				t.Fatalf("DecodeBag(%q) = %+v, %v; want nil message with the error", bag, m, err)
			}
			return
		}
		enc := EncodeBag(m)
		m2, err := DecodeBag(enc)
		if err != nil {
			t.Fatalf("DecodeBag(%q) error %v; encoded from DecodeBag(%q)", enc, err, bag)
		}
		if !sameMessage(m2, m) {
			t.Fatalf("DecodeBag(EncodeBag(m)) = %+v; want %+v (bag %q, encoded %q)", m2, m, bag, enc)
		}
		if enc2 := EncodeBag(m2); enc2 != enc {
			t.Fatalf("EncodeBag not canonical: %q then %q", enc, enc2)
		}
	})
}

// FuzzParseTopic checks that ParseTopic never panics and that a parsed
// topic formats to a topic that parses to the same thing.
func FuzzParseTopic(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.topic)
	}
	for _, s := range []string{
		"", "devices/", "devices//messages/events/", "devices/d/modules/m/inputs/", "$iothub/",
		"$iothub/methods/POST/100%/?$rid=1&$rid=2", "$iothub/twin/res/204/?$rid=1&$version=9223372036854775807",
		"$iothub/twin/res/+7/?%24rid=a?b&$version=0", "devices/d/messages/events/%",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		tp, err := ParseTopic(topic)
		if err != nil {
			if tp != nil {
				t.Fatalf("ParseTopic(%q) = %+v, %v; want nil topic with the error", topic, tp, err)
			}
			return
		}
		if tp.Kind == KindUnknown {
			t.Fatalf("ParseTopic(%q) gave KindUnknown without an error", topic)
		}
		s := tp.String()
		tp2, err := ParseTopic(s)
		if err != nil {
			t.Fatalf("ParseTopic(%q) error %v; formatted from ParseTopic(%q)", s, err, topic)
		}
		if !sameTopic(tp2, tp) {
			t.Fatalf("ParseTopic(%q) = %+v; want %+v (from %q)", s, tp2, tp, topic)
		}
		if s2 := tp2.String(); s2 != s {
			t.Fatalf("Topic.String not canonical: %q then %q", s, s2)
		}
		_, _ = ParseDeviceTopic(topic)
		_ = BelongsTo(topic, tp.DeviceID, tp.ModuleID)
	})
}

// FuzzBagRoundTrip checks decode(encode(m)) == m for messages built from
// arbitrary field values.
func FuzzBagRoundTrip(f *testing.F) {
	f.Add("msg-abc", "corr-1", "application/json", "utf-8", "full", "sp ace", "a/b&c", "alert", "", true, int64(1618997416), int32(0))
	f.Add("", "", "", "", "", "", "", "", "", false, int64(0), int32(0))
	f.Add("%24", "$.mid", "+", "é", "Full", "$.diagid", "=&%", "k", "v", false, int64(-62135596800), int32(999999999))
	f.Fuzz(func(t *testing.T, mid, cid, ct, ce, ack, k1, v1, k2, v2 string, null bool, sec int64, nsec int32) {
		m := &Message{
			MessageID: mid, CorrelationID: cid, ContentType: ct, ContentEncoding: ce, Ack: ack,
			Properties: map[string]string{},
		}
		if tm := time.Unix(sec, int64(nsec)).UTC(); tm.Year() >= 0 && tm.Year() <= 9999 {
			m.ExpiryTime = tm
		}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if kv[0] != "" && !reserved(kv[0]) {
				m.Properties[kv[0]] = kv[1]
			}
		}
		if null && k1 != "" && !reserved(k1) && m.Properties[k1] == "" {
			m.NullProperties = map[string]bool{k1: true}
		}
		bag := EncodeBag(m)
		got, err := DecodeBag(bag)
		if err != nil {
			t.Fatalf("DecodeBag(EncodeBag(%+v) = %q) error %v", m, bag, err)
		}
		if !sameMessage(got, m) {
			t.Fatalf("DecodeBag(%q) = %+v; want %+v", bag, got, m)
		}
		for _, topic := range []string{TelemetryTopic("d", "m", m), C2DTopic("d", m)} {
			tp, err := ParseTopic(topic)
			if err != nil {
				t.Fatalf("ParseTopic(%q) error %v", topic, err)
			}
			want := m
			if tp.Kind == KindC2D && m.To == "" {
				c := *m
				c.To = "/devices/d/messages/devicebound"
				want = &c
			}
			if !sameMessage(tp.Message, want) {
				t.Fatalf("ParseTopic(%q).Message = %+v; want %+v", topic, tp.Message, want)
			}
		}
	})
}
