from modules import scripts


class BrokenProcess(scripts.Script):
    def title(self):
        return "Broken process"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        raise RuntimeError("this process() is broken on purpose")
