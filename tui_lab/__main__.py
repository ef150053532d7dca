from tui_lab.cli import main

main()
