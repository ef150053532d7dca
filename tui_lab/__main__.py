from tui_lab.launch import main

main()
