from bot.cli.main import app

app(prog_name="python -m bot")
