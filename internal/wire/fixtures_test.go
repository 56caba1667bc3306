package wire

func ptr[T any](v T) *T { return &v }

// selectorFilter is the filter Qpid brokers and routers understand: a JMS selector.
func selectorFilter(expr string) *Described {
	return &Described{Descriptor: Symbol("apache.org:selector-filter:string"), Value: expr}
}

func fixtureError() *Error {
	return &Error{Condition: ErrCondNotFound, Description: "no such node",
		Info: Fields{"address": "q1", "retry": true}}
}

func fixtureSource() *Source {
	return &Source{
		Address:               "queue/a",
		Durable:               TerminusDurabilityUnsettledState,
		ExpiryPolicy:          TerminusExpiryPolicyNever,
		Timeout:               30,
		Dynamic:               true,
		DynamicNodeProperties: Fields{"lifetime-policy": &DeleteOnClose{}, "supported-dist-modes": &Array{Code: TypeSym8, Values: []any{Symbol("move"), Symbol("copy")}}},
		DistributionMode:      Symbol(StdDistModeCopy),
		Filter: Fields{
			"apache.org:selector-filter:string": selectorFilter("colour = 'red'"),
			"jms-selector":                      &Described{Descriptor: uint64(0x0000468C00000004), Value: "a > 1"},
		},
		DefaultOutcome: &Modified{DeliveryFailed: true, UndeliverableHere: true, MessageAnnotations: Fields{"x-opt-a": int64(1)}},
		Outcomes:       []Symbol{"amqp:accepted:list", "amqp:rejected:list"},
		Capabilities:   []Symbol{"queue", "shared"},
	}
}

func fixtureTarget() *Target {
	return &Target{
		Address:               "topic/b",
		Durable:               TerminusDurabilityConfiguration,
		ExpiryPolicy:          TerminusExpiryPolicyConnectionClose,
		Timeout:               5,
		Dynamic:               true,
		DynamicNodeProperties: Fields{"lifetime-policy": &DeleteOnNoLinksOrMessages{}},
		Capabilities:          []Symbol{"topic"},
	}
}

func fixtureProperties() *Properties {
	return &Properties{
		MessageID:          "id-1",
		UserID:             []byte("guest"),
		To:                 "amq.topic",
		Subject:            "subject",
		ReplyTo:            "reply/1",
		CorrelationID:      uuidFixture,
		ContentType:        "application/json",
		ContentEncoding:    "gzip",
		AbsoluteExpiryTime: Milliseconds(1700000060000),
		CreationTime:       Milliseconds(1700000000000),
		GroupID:            "group",
		GroupSequence:      ptr(uint32(7)),
		ReplyToGroupID:     "reply-group",
	}
}

// compositeFixtures returns, for every composite type, a value with every field set to
// something other than its zero value and its default.
func compositeFixtures() map[uint64]composite {
	return map[uint64]composite{
		DescriptorOpen: &Open{
			ContainerID:         "container-1",
			Hostname:            "example.org",
			MaxFrameSize:        65536,
			ChannelMax:          255,
			IdleTimeOut:         60000,
			OutgoingLocales:     []Symbol{"en-US"},
			IncomingLocales:     []Symbol{"en-US", "fr-FR"},
			OfferedCapabilities: []Symbol{"ANONYMOUS-RELAY"},
			DesiredCapabilities: []Symbol{"DELAYED_DELIVERY"},
			Properties:          Fields{"product": "qpid-dispatch-router", "version": "1.19.0"},
		},
		DescriptorBegin: &Begin{
			RemoteChannel:       ptr(uint16(3)),
			NextOutgoingID:      1,
			IncomingWindow:      2048,
			OutgoingWindow:      4096,
			HandleMax:           1023,
			OfferedCapabilities: []Symbol{"a"},
			DesiredCapabilities: []Symbol{"b"},
			Properties:          Fields{"k": uint32(9)},
		},
		DescriptorAttach: &Attach{
			Name:                 "link-1",
			Handle:               4,
			Role:                 RoleReceiver,
			SndSettleMode:        SenderSettleModeSettled,
			RcvSettleMode:        ReceiverSettleModeSecond,
			Source:               fixtureSource(),
			Target:               fixtureTarget(),
			Unsettled:            &Map{Entries: []MapEntry{{[]byte{1, 2}, &Accepted{}}, {[]byte{3}, nil}}},
			IncompleteUnsettled:  true,
			InitialDeliveryCount: ptr(uint32(11)),
			MaxMessageSize:       1 << 20,
			OfferedCapabilities:  []Symbol{"c"},
			DesiredCapabilities:  []Symbol{"d"},
			Properties:           Fields{"e": []any{int32(1), "two"}},
		},
		DescriptorFlow: &Flow{
			NextIncomingID: ptr(uint32(10)),
			IncomingWindow: 100,
			NextOutgoingID: 20,
			OutgoingWindow: 200,
			Handle:         ptr(uint32(1)),
			DeliveryCount:  ptr(uint32(5)),
			LinkCredit:     ptr(uint32(300)),
			Available:      ptr(uint32(0)),
			Drain:          true,
			Echo:           true,
			Properties:     Fields{"f": int64(-1)},
		},
		DescriptorTransfer: &Transfer{
			Handle:        2,
			DeliveryID:    ptr(uint32(77)),
			DeliveryTag:   []byte{0, 0, 0, 0, 0, 0, 0, 77},
			MessageFormat: ptr(uint32(0)),
			Settled:       true,
			More:          true,
			RcvSettleMode: ptr(ReceiverSettleModeSecond),
			State:         &TransactionalState{TxnID: []byte("txn"), Outcome: &Accepted{}},
			Resume:        true,
			Aborted:       true,
			Batchable:     true,
		},
		DescriptorDisposition: &Disposition{
			Role:      RoleReceiver,
			First:     5,
			Last:      ptr(uint32(9)),
			Settled:   true,
			State:     &Rejected{Error: fixtureError()},
			Batchable: true,
		},
		DescriptorDetach:                    &Detach{Handle: 3, Closed: true, Error: fixtureError()},
		DescriptorEnd:                       &End{Error: &Error{Condition: ErrCondWindowViolation}},
		DescriptorClose:                     &Close{Error: &Error{Condition: "vendor:custom", Description: "bye"}},
		DescriptorError:                     fixtureError(),
		DescriptorHeader:                    &Header{Durable: true, Priority: ptr(uint8(9)), TTL: 60000, FirstAcquirer: true, DeliveryCount: 2},
		DescriptorProperties:                fixtureProperties(),
		DescriptorReceived:                  &Received{SectionNumber: 2, SectionOffset: 1 << 40},
		DescriptorAccepted:                  &Accepted{},
		DescriptorRejected:                  &Rejected{Error: fixtureError()},
		DescriptorReleased:                  &Released{},
		DescriptorModified:                  &Modified{DeliveryFailed: true, UndeliverableHere: true, MessageAnnotations: Fields{"x-opt-delivery-delay": int64(5)}},
		DescriptorSource:                    fixtureSource(),
		DescriptorTarget:                    fixtureTarget(),
		DescriptorDeleteOnClose:             &DeleteOnClose{},
		DescriptorDeleteOnNoLinks:           &DeleteOnNoLinks{},
		DescriptorDeleteOnNoMessages:        &DeleteOnNoMessages{},
		DescriptorDeleteOnNoLinksOrMessages: &DeleteOnNoLinksOrMessages{},
		DescriptorSASLMechanisms:            &SASLMechanisms{SASLServerMechanisms: []Symbol{"ANONYMOUS", "PLAIN", "EXTERNAL"}},
		DescriptorSASLInit:                  &SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00guest\x00guest"), Hostname: "localhost"},
		DescriptorSASLChallenge:             &SASLChallenge{Challenge: []byte("challenge")},
		DescriptorSASLResponse:              &SASLResponse{Response: []byte("response")},
		DescriptorSASLOutcome:               &SASLOutcome{Code: SASLCodeAuth, AdditionalData: []byte("why")},
		DescriptorCoordinator:               &Coordinator{Capabilities: []Symbol{Symbol(TxnCapabilityLocalTransactions)}},
		DescriptorDeclare:                   &Declare{GlobalID: &Described{Descriptor: uint64(0x99), Value: []byte("xid")}},
		DescriptorDischarge:                 &Discharge{TxnID: []byte("txn-1"), Fail: true},
		DescriptorDeclared:                  &Declared{TxnID: []byte("txn-2")},
		DescriptorTransactionalState:        &TransactionalState{TxnID: []byte("txn-3"), Outcome: &Released{}},
	}
}

// fixtureMessage is a message with every section.
func fixtureMessage() *Message {
	return &Message{
		Header:                &Header{Durable: true, Priority: ptr(uint8(4)), TTL: 1000},
		DeliveryAnnotations:   Annotations{Symbol("x-opt-da"): "d", uint64(42): int32(1)},
		MessageAnnotations:    Annotations{Symbol("x-opt-jms-dest"): int8(0)},
		Properties:            fixtureProperties(),
		ApplicationProperties: map[string]any{"method": "echo", "n": int64(3), "f": 2.5, "at": Milliseconds(1)},
		Data:                  [][]byte{[]byte("hello"), []byte(" world")},
		Footer:                Annotations{Symbol("x-opt-sig"): []byte{1, 2, 3}},
	}
}
