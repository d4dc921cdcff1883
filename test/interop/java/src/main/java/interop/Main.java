package interop;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.ToNumberPolicy;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.microsoft.azure.sdk.iot.device.ClientOptions;
import com.microsoft.azure.sdk.iot.device.DeviceClient;
import com.microsoft.azure.sdk.iot.device.IotHubClientProtocol;
import com.microsoft.azure.sdk.iot.device.IotHubStatusCode;
import com.microsoft.azure.sdk.iot.device.exceptions.IotHubClientException;
import com.microsoft.azure.sdk.iot.device.Message;
import com.microsoft.azure.sdk.iot.device.MessageProperty;
import com.microsoft.azure.sdk.iot.device.transport.IotHubConnectionStatus;
import com.microsoft.azure.sdk.iot.device.transport.IotHubTransportMessage;
import com.microsoft.azure.sdk.iot.device.twin.DirectMethodResponse;
import com.microsoft.azure.sdk.iot.device.twin.GetTwinCorrelatingMessageCallback;
import com.microsoft.azure.sdk.iot.device.twin.ReportedPropertiesUpdateCorrelatingMessageCallback;
import com.microsoft.azure.sdk.iot.device.twin.ReportedPropertiesUpdateResponse;
import com.microsoft.azure.sdk.iot.device.twin.Twin;
import com.microsoft.azure.sdk.iot.device.twin.TwinCollection;
import com.microsoft.azure.sdk.iot.device.IotHubMessageResult;
import com.microsoft.azure.sdk.iot.provisioning.device.AdditionalData;
import com.microsoft.azure.sdk.iot.provisioning.device.ProvisioningDeviceClient;
import com.microsoft.azure.sdk.iot.provisioning.device.ProvisioningDeviceClientRegistrationResult;
import com.microsoft.azure.sdk.iot.provisioning.device.ProvisioningDeviceClientStatus;
import com.microsoft.azure.sdk.iot.provisioning.device.ProvisioningDeviceClientTransportProtocol;
import com.microsoft.azure.sdk.iot.provisioning.security.SecurityProviderSymmetricKey;

import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;

/**
 * Drives the official Azure IoT Java device SDKs (iot-device-client and
 * provisioning-device-client) for test/interop/java_test.go. It reads one
 * JSON command a line on stdin and prints JSON events, one a line, on
 * stdout; every event names the device handle ("dev") it is about, so one
 * JVM serves all the devices of a test. It exits when stdin ends.
 *
 * <p>Commands (field "op"):
 * <ul>
 * <li>register: dev, host, scope, registrationId, key or groupKey (the SDK
 *     derives the device key), transport (HTTPS, MQTT, MQTT_WS, AMQPS,
 *     AMQPS_WS), ca, payload (optional JSON text) → "registered"</li>
 * <li>open: dev, protocol (HTTPS, MQTT, MQTT_WS, AMQPS, AMQPS_WS), ca, and cs
 *     (a device connection string) or none after a register → "opened"; from
 *     then on each C2D message → "c2d", settled as its application property
 *     "settle" says (complete, the default, reject or abandon; a message
 *     abandoned once is completed when it comes again)</li>
 * <li>send: dev, body, messageId, contentType, contentEncoding, properties → "sent"</li>
 * <li>methods: dev → "subscribed"; each call → "method", answered 200 with
 *     {"method": name, "payload": payload}, or 400 when the name is "fail"</li>
 * <li>desired: dev → "subscribedDesired"; each patch → "desired"</li>
 * <li>report: dev, patch → "reported" with the new reported version</li>
 * <li>twin: dev → "twin" with desired and reported</li>
 * <li>close: dev → "closed"</li>
 * </ul>
 * A failed command prints {"event": "error", "dev", "op", "class", "message"}.
 */
public final class Main
{
    /** Whole JSON numbers become longs, not doubles, in what the SDK is given. */
    private static final Gson GSON = new GsonBuilder().setObjectToNumberStrategy(ToNumberPolicy.LONG_OR_DOUBLE).create();
    private static final Object OUT = new Object();

    private final Map<String, Device> devices = new ConcurrentHashMap<>();

    /** One device handle: its client and what provisioning assigned it. */
    private static final class Device
    {
        DeviceClient client;
        String assignedHub;
        String deviceId;
        String key;
        /** The ids of the C2D messages this device has abandoned once. */
        final Set<String> abandoned = ConcurrentHashMap.newKeySet();
    }

    /**
     * The answer to one twin request (a reported-properties update or a
     * getTwin), taken from whichever of two SDK callbacks comes first.
     *
     * <p>iot-device-client 2.5.0 can skip onResponseReceived, under MQTT
     * and AMQPS alike: IotHubTransport.onMessageReceived
     * (transport/IotHubTransport.java lines 331-346) queues the response
     * for its receive thread and wakes it before it looks up the request's
     * callback, and that thread, once it has handled the response, calls
     * onResponseAcknowledged and removes the callback (lines 1264-1276);
     * when it gets there first, onResponseReceived is never called. It
     * happens against Azure IoT Hub too (Azure/azure-iot-sdk-java issue
     * 1803), so no delay of the hub's could hide it. The receive thread
     * always calls onResponseAcknowledged with the response before it
     * removes the callback, so the answer is read from there as well.
     */
    private static final class TwinResponse<T> implements ReportedPropertiesUpdateCorrelatingMessageCallback, GetTwinCorrelatingMessageCallback
    {
        private final Function<IotHubTransportMessage, T> read;
        private final CountDownLatch done = new CountDownLatch(1);
        private final AtomicReference<Object> result = new AtomicReference<>();

        /** read takes the answer's value from the response, as the SDK does. */
        TwinResponse(Function<IotHubTransportMessage, T> read)
        {
            this.read = read;
        }

        @Override
        public void onRequestQueued(Message m, Object ctx) {}

        @Override
        public void onRequestSent(Message m, Object ctx) {}

        @Override
        public void onRequestAcknowledged(Message m, Object ctx, IotHubClientException e) {}

        @Override
        public void onResponseReceived(Message m, Object ctx, IotHubStatusCode status, ReportedPropertiesUpdateResponse r, IotHubClientException e)
        {
            answer(m, e);
        }

        @Override
        public void onResponseReceived(Twin twin, Message m, Object ctx, IotHubStatusCode status, IotHubClientException e)
        {
            answer(m, e);
        }

        @Override
        public void onResponseAcknowledged(Message m, Object ctx)
        {
            answer(m, null);
        }

        /** Records the first answer: e, an unsuccessful status, or the value read. */
        private void answer(Message m, IotHubClientException e)
        {
            if (done.getCount() == 0)
            {
                return;
            }
            IotHubTransportMessage tm = (IotHubTransportMessage) m;
            Object r = e;
            if (r == null)
            {
                String status = tm.getStatus();
                IotHubStatusCode code = status == null ? IotHubStatusCode.ERROR : IotHubStatusCode.getIotHubStatusCode(Integer.parseInt(status));
                r = IotHubStatusCode.isSuccessful(code) ? read.apply(tm) : new IotHubClientException(code, "the hub answered " + status);
            }
            if (result.compareAndSet(null, r))
            {
                done.countDown();
            }
        }

        /** Waits up to 60 s (the SDK's own timeout) for the answer. */
        @SuppressWarnings("unchecked")
        T await(String what) throws Exception
        {
            if (!done.await(60, TimeUnit.SECONDS))
            {
                throw new IotHubClientException(IotHubStatusCode.DEVICE_OPERATION_TIMED_OUT, "no answer to " + what + " within 60 s");
            }
            if (result.get() instanceof Exception)
            {
                throw (Exception) result.get();
            }
            return (T) result.get();
        }
    }

    public static void main(String[] args) throws Exception
    {
        Main m = new Main();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        emit(null, "ready", null);
        String line;
        while ((line = in.readLine()) != null)
        {
            if (line.isBlank())
            {
                continue;
            }
            JsonObject cmd = JsonParser.parseString(line).getAsJsonObject();
            String dev = str(cmd, "dev");
            String op = str(cmd, "op");
            try
            {
                m.run(op, dev, cmd);
            }
            catch (Throwable e)
            {
                // The stack trace goes to stderr, which the test shows when it fails.
                e.printStackTrace();
                Map<String, Object> f = new LinkedHashMap<>();
                f.put("op", op);
                f.put("class", e.getClass().getName());
                f.put("message", String.valueOf(e.getMessage()));
                if (e.getCause() != null)
                {
                    f.put("cause", e.getCause().getClass().getName() + ": " + e.getCause().getMessage());
                }
                emit(dev, "error", f);
            }
        }
        for (Device d : m.devices.values())
        {
            if (d.client != null)
            {
                d.client.close();
            }
        }
        System.exit(0);
    }

    private void run(String op, String dev, JsonObject cmd) throws Exception
    {
        switch (op)
        {
            case "register":
                register(dev, cmd);
                return;
            case "open":
                open(dev, cmd);
                return;
            case "close":
            {
                Device d = device(dev);
                d.client.close();
                d.client = null;
                emit(dev, "closed", null);
                return;
            }
            default:
                break;
        }
        Device d = device(dev);
        if (d.client == null)
        {
            throw new IllegalStateException("device " + dev + " is not open");
        }
        DeviceClient c = d.client;
        switch (op)
        {
            case "send":
            {
                Message msg = new Message(str(cmd, "body").getBytes(StandardCharsets.UTF_8));
                if (cmd.has("messageId"))
                {
                    msg.setMessageId(str(cmd, "messageId"));
                }
                if (cmd.has("contentType"))
                {
                    msg.setContentType(str(cmd, "contentType"));
                }
                if (cmd.has("contentEncoding"))
                {
                    msg.setContentEncoding(str(cmd, "contentEncoding"));
                }
                if (cmd.has("properties"))
                {
                    for (Map.Entry<String, JsonElement> p : cmd.getAsJsonObject("properties").entrySet())
                    {
                        msg.setProperty(p.getKey(), p.getValue().getAsString());
                    }
                }
                c.sendEvent(msg);
                emit(dev, "sent", Map.of("messageId", String.valueOf(msg.getMessageId())));
                return;
            }
            case "methods":
                c.subscribeToMethods((name, payload, ctx) ->
                {
                    JsonElement p = payload.getPayloadAsJsonElement();
                    Map<String, Object> f = new LinkedHashMap<>();
                    f.put("name", name);
                    f.put("payload", p);
                    emit(dev, "method", f);
                    JsonObject answer = new JsonObject();
                    answer.addProperty("method", name);
                    answer.add("payload", p);
                    return new DirectMethodResponse("fail".equals(name) ? 400 : 200, answer);
                }, null);
                emit(dev, "subscribed", null);
                return;
            case "desired":
                c.subscribeToDesiredProperties((twin, ctx) ->
                        emit(dev, "desired", Map.of("patch", collection(twin.getDesiredProperties()))), null);
                emit(dev, "subscribedDesired", null);
                return;
            case "report":
            {
                TwinCollection patch = new TwinCollection();
                for (Map.Entry<String, JsonElement> p : cmd.getAsJsonObject("patch").entrySet())
                {
                    patch.put(p.getKey(), GSON.fromJson(p.getValue(), Object.class));
                }
                // The response's version, as DeviceTwin.updateReportedPropertiesAsync reads it.
                TwinResponse<Integer> res = new TwinResponse<>(IotHubTransportMessage::getVersion);
                c.updateReportedPropertiesAsync(patch, res, null);
                emit(dev, "reported", Map.of("version", res.await("the reported-properties update")));
                return;
            }
            case "twin":
            {
                // The twin in the response's body, as DeviceTwin.getTwinAsync reads it.
                TwinResponse<Twin> res = new TwinResponse<>(m -> Twin.createFromPropertiesJson(new String(m.getBytes(), StandardCharsets.UTF_8)));
                c.getTwinAsync(res, null);
                Twin twin = res.await("getTwin");
                Map<String, Object> f = new LinkedHashMap<>();
                f.put("desired", collection(twin.getDesiredProperties()));
                f.put("reported", collection(twin.getReportedProperties()));
                emit(dev, "twin", f);
                return;
            }
            default:
                throw new IllegalArgumentException("unknown op " + op);
        }
    }

    private Device device(String dev)
    {
        Device d = devices.get(dev);
        if (d == null)
        {
            throw new IllegalStateException("no device " + dev);
        }
        return d;
    }

    /** Registers through DPS with a symmetric key and keeps what it was assigned. */
    private void register(String dev, JsonObject cmd) throws Exception
    {
        String regId = str(cmd, "registrationId");
        byte[] key;
        if (cmd.has("groupKey"))
        {
            // The SDK's own derivation: HMAC-SHA256 of the registration id
            // with the group key, base64.
            key = SecurityProviderSymmetricKey.ComputeDerivedSymmetricKey(
                    str(cmd, "groupKey").getBytes(StandardCharsets.UTF_8), regId);
        }
        else
        {
            key = str(cmd, "key").getBytes(StandardCharsets.UTF_8);
        }
        SSLContext ssl = trusting(str(cmd, "ca"));
        SecurityProviderSymmetricKey security = new SecurityProviderSymmetricKey(key, regId)
        {
            @Override
            public SSLContext getSSLContext()
            {
                return ssl;
            }
        };
        ProvisioningDeviceClient pdc = ProvisioningDeviceClient.create(str(cmd, "host"), str(cmd, "scope"),
                ProvisioningDeviceClientTransportProtocol.valueOf(str(cmd, "transport")), security);
        try
        {
            ProvisioningDeviceClientRegistrationResult r;
            if (cmd.has("payload"))
            {
                AdditionalData data = new AdditionalData();
                data.setProvisioningPayload(str(cmd, "payload"));
                r = pdc.registerDeviceSync(data);
            }
            else
            {
                r = pdc.registerDeviceSync();
            }
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("status", String.valueOf(r.getProvisioningDeviceClientStatus()));
            f.put("registrationStatus", r.getStatus());
            f.put("assignedHub", r.getIothubUri());
            f.put("deviceId", r.getDeviceId());
            f.put("registrationId", r.getRegistrationId());
            f.put("substatus", String.valueOf(r.getSubstatus()));
            f.put("payload", r.getProvisioningPayload());
            if (r.getProvisioningDeviceClientStatus() == ProvisioningDeviceClientStatus.PROVISIONING_DEVICE_STATUS_ASSIGNED)
            {
                Device d = devices.computeIfAbsent(dev, k -> new Device());
                d.assignedHub = r.getIothubUri();
                d.deviceId = r.getDeviceId();
                d.key = new String(key, StandardCharsets.UTF_8);
            }
            emit(dev, "registered", f);
        }
        finally
        {
            pdc.close();
        }
    }

    /** Opens a device client from a connection string or from what DPS assigned. */
    private void open(String dev, JsonObject cmd) throws Exception
    {
        Device d = devices.computeIfAbsent(dev, k -> new Device());
        String cs = str(cmd, "cs");
        if (cs == null)
        {
            if (d.assignedHub == null)
            {
                throw new IllegalStateException("device " + dev + " has neither a connection string nor a registration");
            }
            cs = "HostName=" + d.assignedHub + ";DeviceId=" + d.deviceId + ";SharedAccessKey=" + d.key;
        }
        IotHubClientProtocol protocol = IotHubClientProtocol.valueOf(str(cmd, "protocol"));
        ClientOptions.ClientOptionsBuilder opts = ClientOptions.builder().sslContext(trusting(str(cmd, "ca")));
        if (protocol == IotHubClientProtocol.HTTPS)
        {
            // HTTPS polls for C2D messages at the receive interval (10 ms by default).
            opts.receiveInterval(200);
        }
        DeviceClient c = new DeviceClient(cs, protocol, opts.build());
        c.setMessageCallback((message, ctx) ->
        {
            String id = message.getMessageId();
            String settle = message.getProperty("settle");
            IotHubMessageResult result = IotHubMessageResult.COMPLETE;
            if ("reject".equals(settle))
            {
                result = IotHubMessageResult.REJECT;
            }
            else if ("abandon".equals(settle) && d.abandoned.add(String.valueOf(id)))
            {
                result = IotHubMessageResult.ABANDON;
            }
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("body", new String(message.getBytes(), StandardCharsets.UTF_8));
            f.put("messageId", id);
            f.put("correlationId", message.getCorrelationId());
            Map<String, String> props = new HashMap<>();
            for (MessageProperty p : message.getProperties())
            {
                props.put(p.getName(), p.getValue());
            }
            f.put("properties", props);
            f.put("action", result.name().toLowerCase());
            emit(dev, "c2d", f);
            return result;
        }, null);
        c.setConnectionStatusChangeCallback((ctx) ->
        {
            if (ctx.getNewStatus() != IotHubConnectionStatus.CONNECTED)
            {
                Map<String, Object> f = new LinkedHashMap<>();
                f.put("status", String.valueOf(ctx.getNewStatus()));
                f.put("reason", String.valueOf(ctx.getNewStatusReason()));
                f.put("cause", String.valueOf(ctx.getCause()));
                emit(dev, "connectionStatus", f);
            }
        }, null);
        c.open(false);
        d.client = c;
        emit(dev, "opened", null);
    }

    /** An SSLContext that trusts the PEM certificate(s) in caFile alone. */
    private static SSLContext trusting(String caFile) throws Exception
    {
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        try (InputStream in = new FileInputStream(caFile))
        {
            int i = 0;
            for (Certificate cert : CertificateFactory.getInstance("X.509").generateCertificates(in))
            {
                ks.setCertificateEntry("ca" + i++, cert);
            }
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        SSLContext ctx = SSLContext.getInstance("TLSv1.2");
        ctx.init(null, tmf.getTrustManagers(), new SecureRandom());
        return ctx;
    }

    private static JsonElement collection(TwinCollection c)
    {
        JsonObject o = new JsonObject();
        for (Map.Entry<String, Object> e : c.entrySet())
        {
            o.add(e.getKey(), GSON.toJsonTree(e.getValue()));
        }
        if (c.getVersion() != null)
        {
            o.addProperty("$version", c.getVersion());
        }
        return o;
    }

    private static String str(JsonObject o, String name)
    {
        JsonElement e = o.get(name);
        return e == null || e.isJsonNull() ? null : e.getAsString();
    }

    private static void emit(String dev, String event, Map<String, ?> fields)
    {
        JsonObject o = new JsonObject();
        o.addProperty("event", event);
        if (dev != null)
        {
            o.addProperty("dev", dev);
        }
        if (fields != null)
        {
            for (Map.Entry<String, ?> e : fields.entrySet())
            {
                Object v = e.getValue();
                o.add(e.getKey(), v instanceof JsonElement ? (JsonElement) v : GSON.toJsonTree(v));
            }
        }
        synchronized (OUT)
        {
            System.out.println(GSON.toJson(o));
            System.out.flush();
        }
    }
}
