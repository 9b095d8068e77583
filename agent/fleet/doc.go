// Package fleet makes an otok device a member of a fleet controlled over
// MQTT 3.1.1, and gives the operator a controller speaking the same
// protocol.
//
// It owns: the topics (otok/v1/dev/<id>/{state,status,event,cmd,reply,
// desired}, otok/v1/group/<g>/desired), the CBOR messages and their schema
// (protocol.cddl, golden vectors in testdata/), the COSE_Sign1 signatures
// on commands and desired documents, replay protection, the MQTT session
// (birth and death with bdseq after Sparkplug B, retained status on change
// and heartbeat, numbered events with a bounded offline queue, jittered
// exponential reconnect with broker failover, TLS and mutual TLS), the
// merge of device and group desired state, the controller side
// (Controller) and a simulated fleet (StartSim, FakeAgent).
//
// It must not know: how containers run, how images are stored or
// verified, UCI syntax, ubus. It sees the agent only through the Agent
// interface defined in agent.go; the daemon adapts its command API to it,
// and parses `config fleet` into a Config.
//
// Files: message.go (types), codec.go (strict bounded decoding), cose.go
// (which signed messages are accepted; the COSE_Sign1 itself and the keys
// are package cose), topics.go, config.go and uciconfig.go, dial.go
// (buffered broker connections), session.go (connection, birth/death,
// status, events), command.go (cmd → reply), desired.go, replay.go,
// backoff.go, queue.go, agentadapter.go (the daemon's command API),
// controller.go, docfile.go and yaml.go (deploy files), fake.go and sim.go
// (simulation).
// fleettest/ starts real brokers (mosquitto, a NATS cluster) for tests.
//
// Delivery guarantees, as MQTT 3.1.1 with clean sessions gives them:
// commands are not queued for offline devices (they carry deadlines; the
// controller retries with the same request id, which is idempotent);
// desired documents and statuses are retained, so a device that comes
// back applies the latest document, and a controller that starts late
// sees every device's last status. Events published while offline wait in
// RAM (QueueSize, oldest dropped first, counted in status).
//
// Brokers. mosquitto: raise max_queued_messages (its default of 1000
// silently drops QoS 1 replies to a controller subscribed to
// otok/v1/dev/+/reply at a few thousand devices) and set set_tcp_nodelay
// true; its listen backlog is 100, which is why reconnects are jittered.
// NATS (2.9, MQTT listener over JetStream, tested as a 3-node cluster):
// QoS 0 and 1 only (otok uses no QoS 2); ids and group names must not
// contain '.' or ' ' (NATS refuses such topics and drops the client — ids
// here never do); every QoS 1 subscription is a replicated JetStream
// consumer created on each connect, so devices subscribe at QoS 0, which
// with clean sessions loses nothing; while JetStream re-elects a leader
// after a node dies, CONNECT stalls ~4 s and fails and SUBACK may refuse
// topics (0x80) — devices treat that as a failed connect and back off, and
// failover took 0.2 s (leader survived) to 9 s (leader on the dead node);
// a node that dies takes its clients' Wills with it, so controllers also
// treat three missed status heartbeats as offline. Retained messages are
// JetStream-stored and seen from every node.
//
// The daemon wires a session with ForAgent (config fleet section, agent
// adapter, state files); image import by URL needs AgentAdapter.ImportURL.
//
// Example, on the device:
//
//	s, err := fleet.NewSession(fleet.Config{
//		Brokers:  []string{"ssl://mqtt1.example.net:8883", "ssl://mqtt2.example.net:8883"},
//		DeviceID: fleet.DeviceIDFromMAC(labelMAC),
//		Groups:   []string{"lab"},
//		Keys:     controllerKeys, // commands must be signed by one of them
//		TLS:      tlsConfig,
//	}, agentAdapter)
//	if err != nil { … }
//	go s.Run(ctx) // until ctx is done; then death is published
//
// and on the operator's host:
//
//	k, _ := fleet.DialController(ctx, fleet.ControllerConfig{Brokers: brokers, Key: key})
//	r, _ := k.Do(ctx, fleet.NewCommand("94833c1a2b3c", "restart", fleet.Args{Name: "dns"}, 30*time.Second), nil)
package fleet
