package main

func Example_main() {
	main()
	// Output:
	// server healthy=true: probe error=<nil> unhealthy=false
	// server healthy=false: probe error=healthcheck: unhealthy reply: "-ERR loading\r\n" unhealthy=true
}
