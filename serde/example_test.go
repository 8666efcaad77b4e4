package serde_test

import (
	"fmt"

	"github.com/runnel-dev/runnel/serde"
)

func ExampleJSON() {
	type Order struct {
		ID   int64  `json:"id"`
		Item string `json:"item"`
	}
	s := serde.JSON[Order]()

	b, err := s.Serialize("orders", Order{ID: 7, Item: "tea"})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))

	o, err := s.Deserialize("orders", b)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", o)

	// A nil slice is Kafka's null (a tombstone): it decodes to the zero value.
	o, err = s.Deserialize("orders", nil)
	fmt.Printf("%+v %v\n", o, err)

	_, err = s.Deserialize("orders", []byte(`{"id":`))
	fmt.Println(err)
	// Output:
	// {"id":7,"item":"tea"}
	// {ID:7 Item:tea}
	// {ID:0 Item:} <nil>
	// serde: JSON on topic "orders": unexpected end of JSON input
}

func ExampleInt64() {
	b, _ := serde.Int64.Serialize("counts", 1)
	fmt.Printf("% x\n", b)

	_, err := serde.Int64.Deserialize("counts", b[:3])
	fmt.Println(err)
	// Output:
	// 00 00 00 00 00 00 00 01
	// serde: Int64 on topic "counts": got 3 bytes, want 8: serde: wrong data size
}
