package message_test

import (
	"fmt"

	"github.com/iotctl/iotctl/pkg/message"
)

func ExampleTelemetryTopic() {
	m := &message.Message{
		Body:            []byte(`{"temperature":21.5}`),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Properties:      map[string]string{"temperatureAlert": "false"},
	}
	fmt.Println(message.TelemetryTopic("d", "", m))
	// Output: devices/d/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false
}

func ExampleParseTopic() {
	t, err := message.ParseTopic("devices/dev1/messages/devicebound/%24.mid=msg-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2Fdevicebound&color=red&flag")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Kind, t.DeviceID, t.Message.MessageID, t.Message.To)
	fmt.Printf("color=%q flag null=%v\n", t.Message.Properties["color"], t.Message.IsNull("flag"))

	t, _ = message.ParseTopic("$iothub/methods/POST/SetTelemetryInterval/?$rid=42")
	fmt.Println(t.Kind, t.MethodName, t.RequestID)
	// Output:
	// c2d dev1 msg-1 /devices/dev1/messages/devicebound
	// color="red" flag null=true
	// method-request SetTelemetryInterval 42
}

func ExampleBelongsTo() {
	fmt.Println(message.BelongsTo("devices/dev1/messages/devicebound/#", "dev1", ""))
	fmt.Println(message.BelongsTo("devices/dev2/messages/events/", "dev1", ""))
	fmt.Println(message.BelongsTo("$iothub/twin/res/#", "dev1", ""))
	// Output:
	// true
	// false
	// true
}
