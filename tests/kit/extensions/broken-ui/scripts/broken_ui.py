from modules import scripts


class BrokenUi(scripts.Script):
    def title(self):
        return "Broken UI"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        raise ValueError("this ui() is broken on purpose")
