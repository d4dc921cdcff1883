package message

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeBag(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
		want string
	}{
		{
			name: "python example: system properties then sorted application properties",
			m: &Message{
				ContentType:     "application/json",
				ContentEncoding: "utf-8",
				Properties:      map[string]string{"temperatureAlert": "false"},
			},
			want: "%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false",
		},
		{
			name: "node example: space, slash and ampersand are percent-encoded",
			m: &Message{
				MessageID:       "msg-abc",
				CorrelationID:   "corr-1",
				ContentType:     "application/json",
				ContentEncoding: "utf-8",
				Properties:      map[string]string{"sp ace": "a/b&c", "alert": "high"},
			},
			want: "%24.mid=msg-abc&%24.cid=corr-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&sp%20ace=a%2Fb%26c",
		},
		{name: "nil message gives an empty bag", m: nil, want: ""},
		{name: "empty message gives an empty bag", m: &Message{Body: []byte("x")}, want: ""},
		{
			name: "every system property in the fixed order",
			m: &Message{
				Ack:             "full",
				ComponentName:   "thermostat1",
				InterfaceID:     "dtmi:com:example:Thermostat;1",
				OutputName:      "out1",
				CreationTime:    time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC),
				ExpiryTime:      time.Date(2021, 4, 21, 12, 0, 0, 500000000, time.UTC),
				To:              "/devices/d/messages/devicebound",
				ContentEncoding: "utf-8",
				ContentType:     "text/plain",
				UserID:          "u",
				CorrelationID:   "c",
				MessageID:       "m",
				InputName:       "not-in-bag",
			},
			want: "%24.mid=m&%24.cid=c&%24.uid=u&%24.ct=text%2Fplain&%24.ce=utf-8" +
				"&%24.to=%2Fdevices%2Fd%2Fmessages%2Fdevicebound" +
				"&%24.exp=2021-04-21T12%3A00%3A00.5Z&%24.ctime=2021-04-21T11%3A30%3A16Z" +
				"&%24.on=out1&%24.ifid=dtmi%3Acom%3Aexample%3AThermostat%3B1&%24.sub=thermostat1&iothub-ack=full",
		},
		{
			name: "times are written in UTC",
			m:    &Message{ExpiryTime: time.Date(2021, 4, 21, 13, 30, 16, 0, time.FixedZone("CEST", 2*3600))},
			want: "%24.exp=2021-04-21T11%3A30%3A16Z",
		},
		{
			name: "null property is a bare name, empty property ends with =",
			m: &Message{
				Properties:     map[string]string{"prop1": "", "prop2": "", "prop3": "a string"},
				NullProperties: map[string]bool{"prop1": true},
			},
			want: "prop1&prop2=&prop3=a%20string",
		},
		{
			name: "a null mark on a non-empty value is ignored",
			m: &Message{
				Properties:     map[string]string{"a": "1"},
				NullProperties: map[string]bool{"a": true, "absent": true},
			},
			want: "a=1",
		},
		{
			name: "reserved and empty names in Properties are skipped",
			m: &Message{
				MessageID:  "real",
				Properties: map[string]string{"$.mid": "fake", "iothub-ack": "full", "": "x", "$.diagid": "d"},
			},
			want: "%24.mid=real&%24.diagid=d",
		},
		{
			name: "plus, dollar, tilde and non-ASCII",
			m:    &Message{Properties: map[string]string{"k~": "1+2$ é"}},
			want: "k~=1%2B2%24%20%C3%A9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodeBag(tt.m); got != tt.want {
				t.Errorf("EncodeBag(%+v) = %q; want %q", tt.m, got, tt.want)
			}
		})
	}
}

func TestAppendBagAppends(t *testing.T) {
	got := string(AppendBag([]byte("prefix/"), &Message{MessageID: "1"}))
	if want := "prefix/%24.mid=1"; got != want {
		t.Errorf("AppendBag = %q; want %q", got, want)
	}
}

func TestDecodeBag(t *testing.T) {
	tests := []struct {
		name string
		bag  string
		want *Message
	}{
		{name: "empty bag has no properties", bag: "", want: &Message{}},
		{
			name: "node telemetry example",
			bag:  "%24.mid=msg-abc&%24.cid=corr-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&sp%20ace=a%2Fb%26c",
			want: &Message{
				MessageID: "msg-abc", CorrelationID: "corr-1", ContentType: "application/json", ContentEncoding: "utf-8",
				Properties: map[string]string{"alert": "high", "sp ace": "a/b&c"},
			},
		},
		{
			name: "csdk c2d example: iothub-ack, null system properties are unset",
			bag:  "iothub-ack=Full&propName=PropValue&DeviceInfo=smokeTest&%24.to=%2Fdevices%2FmyDeviceId%2Fmessages%2FdeviceBound&%24.cid&%24.uid",
			want: &Message{
				Ack:        "Full",
				To:         "/devices/myDeviceId/messages/deviceBound",
				Properties: map[string]string{"propName": "PropValue", "DeviceInfo": "smokeTest"},
			},
		},
		{
			name: "unencoded dollar prefix as in the docs routing example",
			bag:  "$.ct=application%2Fjson%3Bcharset%3Dutf-8",
			want: &Message{ContentType: "application/json;charset=utf-8"},
		},
		{
			name: "docs null, empty and string values",
			bag:  "prop1&prop2=&prop3=a%20string",
			want: &Message{
				Properties:     map[string]string{"prop1": "", "prop2": "", "prop3": "a string"},
				NullProperties: map[string]bool{"prop1": true},
			},
		},
		{name: "plus is a literal plus", bag: "a=1+2&b+c=d", want: &Message{Properties: map[string]string{"a": "1+2", "b+c": "d"}}},
		{name: "lower-case hex decodes", bag: "a=%2f%c3%a9", want: &Message{Properties: map[string]string{"a": "/é"}}},
		{name: "value split at the first equals", bag: "a=b=c", want: &Message{Properties: map[string]string{"a": "b=c"}}},
		{name: "empty pairs are skipped", bag: "&a=1&&b=2&", want: &Message{Properties: map[string]string{"a": "1", "b": "2"}}},
		{name: "duplicate name: last wins", bag: "a=1&a=2&%24.mid=x&$.mid=y", want: &Message{MessageID: "y", Properties: map[string]string{"a": "2"}}},
		{name: "duplicate name: value after null clears null", bag: "a&a=1", want: &Message{Properties: map[string]string{"a": "1"}}},
		{
			name: "duplicate name: null after value is null",
			bag:  "a=1&a",
			want: &Message{Properties: map[string]string{"a": ""}, NullProperties: map[string]bool{"a": true}},
		},
		{
			name: "unknown system property stays in Properties",
			bag:  "%24.diagid=abc&%24.diagctx=x%3Dy",
			want: &Message{Properties: map[string]string{"$.diagid": "abc", "$.diagctx": "x=y"}},
		},
		{
			name: "every system property",
			bag: "%24.mid=m&%24.cid=c&%24.uid=u&%24.ct=t&%24.ce=e&%24.to=%2Fx&%24.exp=2021-04-21T12%3A00%3A00Z" +
				"&%24.ctime=2021-04-21T11%3A30%3A16.1234567Z&%24.on=o&%24.ifid=i&%24.sub=s&iothub-ack=none",
			want: &Message{
				MessageID: "m", CorrelationID: "c", UserID: "u", ContentType: "t", ContentEncoding: "e", To: "/x",
				ExpiryTime:   time.Date(2021, 4, 21, 12, 0, 0, 0, time.UTC),
				CreationTime: time.Date(2021, 4, 21, 11, 30, 16, 123456700, time.UTC),
				OutputName:   "o", InterfaceID: "i", ComponentName: "s", Ack: "none",
			},
		},
		{
			name: "time with an offset is converted to UTC",
			bag:  "%24.exp=2021-04-21T13:30:16+02:00",
			want: &Message{ExpiryTime: time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC)},
		},
		{
			name: "time without an offset is UTC",
			bag:  "%24.ctime=2021-04-21T11%3A30%3A16.5",
			want: &Message{CreationTime: time.Date(2021, 4, 21, 11, 30, 16, 500000000, time.UTC)},
		},
		{
			name: "time without an offset or fraction is UTC",
			bag:  "%24.exp=2021-04-21T11:30:16",
			want: &Message{ExpiryTime: time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC)},
		},
		{name: "empty and null times are unset", bag: "%24.exp=&%24.ctime", want: &Message{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeBag(tt.bag)
			if err != nil {
				t.Fatalf("DecodeBag(%q) error %v", tt.bag, err)
			}
			if !sameMessage(got, tt.want) {
				t.Errorf("DecodeBag(%q) = %+v; want %+v", tt.bag, got, tt.want)
			}
			if got.ExpiryTime.Location() != time.UTC || got.CreationTime.Location() != time.UTC {
				t.Errorf("DecodeBag(%q) times not in UTC", tt.bag)
			}
		})
	}
}

func TestDecodeBagErrors(t *testing.T) {
	tests := []struct {
		name     string
		bag      string
		want     error
		wantText string
	}{
		{name: "bad hex digit in a name", bag: "a%G1=b", want: ErrEscape,
			wantText: `message: malformed percent escape "%G1" in property "a%G1=b"`},
		{name: "lone percent at the end of a value", bag: "x=1&a=%", want: ErrEscape,
			wantText: `message: malformed percent escape "%" in property "a=%"`},
		{name: "one hex digit at the end", bag: "a=%4", want: ErrEscape, wantText: `"%4"`},
		{name: "empty name", bag: "=x", want: ErrEmptyName, wantText: `message: empty property name in property "=x"`},
		{name: "empty name after another pair", bag: "a=1&=", want: ErrEmptyName},
		{name: "expiry is not a time", bag: "%24.exp=0", want: ErrTime,
			wantText: `message: malformed time "0" in property "%24.exp=0"`},
		{name: "creation time year out of range after UTC", bag: "%24.ctime=0000-01-01T00:00:00%2B01:00", want: ErrTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeBag(tt.bag)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeBag(%q) = %+v, %v; want error %v", tt.bag, m, err, tt.want)
			}
			var pe *PropertyError
			if !errors.As(err, &pe) {
				t.Errorf("DecodeBag(%q) error %T; want *PropertyError", tt.bag, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("DecodeBag(%q) error %q; want it to contain %q", tt.bag, err, tt.wantText)
			}
		})
	}
}

func TestBagRoundTrip(t *testing.T) {
	msgs := []*Message{
		{},
		{MessageID: "a b", Properties: map[string]string{"x": "", "y": "", "z": "&=%+?#/"}, NullProperties: map[string]bool{"x": true}},
		{
			MessageID: "m", CorrelationID: "c", UserID: "u", ContentType: "application/json; charset=utf-8",
			ContentEncoding: "utf-8", To: "/devices/d/messages/devicebound", OutputName: "o", InterfaceID: "dtmi:x;1",
			ComponentName: "c1", Ack: "positive",
			ExpiryTime:   time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
			CreationTime: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
			Properties:   map[string]string{"$.diagid": "x", "ünï": "cöde", "\x00": "\xff"},
		},
	}
	for _, m := range msgs {
		bag := EncodeBag(m)
		got, err := DecodeBag(bag)
		if err != nil {
			t.Fatalf("DecodeBag(EncodeBag(%+v) = %q) error %v", m, bag, err)
		}
		if !sameMessage(got, m) {
			t.Errorf("DecodeBag(%q) = %+v; want %+v", bag, got, m)
		}
	}
}
