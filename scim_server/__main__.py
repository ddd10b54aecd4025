from scim_server.cli import main

main()
