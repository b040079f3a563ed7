from agentctl.cli.app import main

main()
