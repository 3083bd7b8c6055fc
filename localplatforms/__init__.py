"""Stand-ins for the platforms' open APIs (抖店, 快手), as localbroker stands in for Kafka:
HTTP servers that speak each platform's documented push and API formats (signatures and
encryption included) and misbehave on demand. The tests drive them; `make demo` runs a
抖店 shop with them so the 数据接入 page shows lost pushes recovered."""
