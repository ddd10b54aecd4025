from scim_server import create_app

app = create_app()
