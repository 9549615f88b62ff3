# The import ID is <cluster>/<reflector node>: a reflector nodenet manages is taken over.
terraform import nodenet_route_reflector.master01 calico/master01
