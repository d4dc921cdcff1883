// Package message is the Azure IoT Hub message model and the MQTT topic
// and property-bag codec that iotctl's device client and its local hub
// emulator share, so that both ends read and write topics the same way.
//
// A Message holds a body, the system properties ($.mid, $.ct, ...) and
// the application properties. EncodeBag and DecodeBag convert its
// properties to and from the property bag IoT Hub puts in telemetry and
// C2D topics ("%24.ct=application%2Fjson&alert=high"); the ...Topic
// builders write every IoT Hub MQTT topic and ParseTopic and
// ParseDeviceTopic read them back into a Topic. BelongsTo tells the hub
// whether a device or module may use a topic or filter.
//
// A device sending telemetry:
//
//	m := &message.Message{
//		Body:            []byte(`{"temperature":21.5}`),
//		ContentType:     "application/json",
//		ContentEncoding: "utf-8",
//		Properties:      map[string]string{"temperatureAlert": "false"},
//	}
//	topic := message.TelemetryTopic("d", "", m)
//	// devices/d/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false
//
// The hub receiving it:
//
//	if !message.BelongsTo(topic, clientDeviceID, clientModuleID) { ... }
//	t, err := message.ParseDeviceTopic(topic)
//	if err != nil { ... } // *TopicError; errors.Is(err, message.ErrMalformedTopic)
//	switch t.Kind {
//	case message.KindTelemetry:
//		t.Message.Body = payload
//		if t.Message.Size() > message.MaxTelemetrySize { ... }
//	case message.KindTwinGet:
//		publish(message.TwinResponseTopic(200, t.RequestID, 0), twinJSON)
//	}
//
// The package has no state; all functions are safe for concurrent use.
package message
