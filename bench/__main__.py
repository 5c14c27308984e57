from bench import agi_commands

agi_commands.run()
