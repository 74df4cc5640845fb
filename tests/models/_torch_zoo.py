"""The zoo's architectures written in PyTorch, with torchvision's module names (test oracle).

torchvision is not a dependency: these classes follow torchvision's source (AlexNet, VGG,
ResNet, GoogLeNet) and the widely used CIFAR ResNet reference (option-A shortcuts, a
``linear`` head), with a ``width`` factor so the tests can run small versions. ``make(torch)``
defines them against the torch module the oracle fixture gives.
"""

from __future__ import annotations

from types import SimpleNamespace


def randomize_batch_norm(torch, model, seed=0):
    """Non-trivial batch-norm parameters and running statistics (defaults are 1, 0, 0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(7)


def numpy_state(sd):
    """A torch state_dict as NumPy arrays (what models.load_torch_state_dict takes)."""
    return {k: v.detach().numpy() for k, v in sd.items()}


def make(torch):
    nn = torch.nn
    tf = torch.nn.functional

    def ch(c, width):
        return max(1, int(c * width + 0.5))

    class LeNet5(nn.Module):
        def __init__(self, classic=False, num_classes=10):
            super().__init__()
            act = nn.Tanh if classic else nn.ReLU
            pool = nn.AvgPool2d if classic else nn.MaxPool2d
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=0 if classic else 2), act(), pool(2),
                nn.Conv2d(6, 16, 5), act(), pool(2))
            self.classifier = nn.Sequential(
                nn.Linear(400, 120), act(), nn.Linear(120, 84), act(),
                nn.Linear(84, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    class AlexNet(nn.Module):
        def __init__(self, num_classes, width, hidden, pooled=6):
            super().__init__()
            c = [ch(v, width) for v in (64, 192, 384, 256, 256)]
            self.features = nn.Sequential(
                nn.Conv2d(3, c[0], 11, stride=4, padding=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2),
                nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
                nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
            self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
            self.classifier = nn.Sequential(
                nn.Dropout(0.5), nn.Linear(c[4] * pooled * pooled, hidden), nn.ReLU(True),
                nn.Dropout(0.5), nn.Linear(hidden, hidden), nn.ReLU(True),
                nn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    vgg_cfgs = {11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]}

    class VGG(nn.Module):
        def __init__(self, depth, num_classes, width, hidden, batch_norm=False, pooled=7):
            super().__init__()
            layers, cin = [], 3
            for v in vgg_cfgs[depth]:
                if v == "M":
                    layers.append(nn.MaxPool2d(2, 2))
                    continue
                v = ch(v, width)
                layers.append(nn.Conv2d(cin, v, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=True))
                cin = v
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
            self.classifier = nn.Sequential(
                nn.Linear(cin * pooled * pooled, hidden), nn.ReLU(True), nn.Dropout(),
                nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
                nn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    def conv3x3(cin, cout, stride=1):
        return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, cin, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = conv3x3(cin, planes, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(out + identity)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = conv3x3(planes, planes, stride)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(out + identity)

    class ResNet(nn.Module):
        def __init__(self, block, layers, num_classes, width):
            super().__init__()
            base = ch(64, width)
            self.inplanes = base
            self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(base)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
            self.layer1 = self._make(block, base, layers[0])
            self.layer2 = self._make(block, base * 2, layers[1], 2)
            self.layer3 = self._make(block, base * 4, layers[2], 2)
            self.layer4 = self._make(block, base * 8, layers[3], 2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(base * 8 * block.expansion, num_classes)

        def _make(self, block, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride,
                              bias=False),
                    nn.BatchNorm2d(planes * block.expansion))
            layers = [block(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * block.expansion
            layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class LambdaLayer(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    class CifarBlock(nn.Module):
        def __init__(self, cin, planes, stride=1):
            super().__init__()
            self.conv1 = conv3x3(cin, planes, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != planes:  # option A of the paper
                self.shortcut = LambdaLayer(lambda x: tf.pad(
                    x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0))

        def forward(self, x):
            out = tf.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return tf.relu(out + self.shortcut(x))

    class CifarResNet(nn.Module):
        def __init__(self, depth, num_classes=10):
            super().__init__()
            n = (depth - 2) // 6
            self.in_planes = 16
            self.conv1 = conv3x3(3, 16)
            self.bn1 = nn.BatchNorm2d(16)
            self.layer1 = self._make(16, n, 1)
            self.layer2 = self._make(32, n, 2)
            self.layer3 = self._make(64, n, 2)
            self.linear = nn.Linear(64, num_classes)

        def _make(self, planes, n, stride):
            layers = []
            for s in [stride] + [1] * (n - 1):
                layers.append(CifarBlock(self.in_planes, planes, s))
                self.in_planes = planes
            return nn.Sequential(*layers)

        def forward(self, x):
            out = tf.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            out = tf.avg_pool2d(out, out.size()[3])
            return self.linear(out.view(out.size(0), -1))

    class BasicConv2d(nn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return tf.relu(self.bn(self.conv(x)), inplace=True)

    class Inception(nn.Module):
        def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
            super().__init__()
            self.branch1 = BasicConv2d(cin, ch1x1, kernel_size=1)
            self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, kernel_size=1),
                                         BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
            self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, kernel_size=1),
                                         BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
            self.branch4 = nn.Sequential(
                nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                BasicConv2d(cin, pool_proj, kernel_size=1))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                              self.branch4(x)], 1)

    class InceptionAux(nn.Module):
        def __init__(self, cin, num_classes, width):
            super().__init__()
            self.conv = BasicConv2d(cin, ch(128, width), kernel_size=1)
            self.fc1 = nn.Linear(ch(128, width) * 16, ch(1024, width))
            self.fc2 = nn.Linear(ch(1024, width), num_classes)
            self.dropout = nn.Dropout(0.7)

        def forward(self, x):
            x = tf.adaptive_avg_pool2d(x, (4, 4))
            x = torch.flatten(self.conv(x), 1)
            return self.fc2(self.dropout(tf.relu(self.fc1(x), inplace=True)))

    specs = {
        "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
        "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
        "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
        "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
        "5b": (832, 384, 192, 384, 48, 128, 128),
    }

    class GoogLeNet(nn.Module):
        """torchvision's GoogLeNet (transform_input off), channels times ``width``."""

        def __init__(self, num_classes, width, aux_logits=False, transform_input=False):
            super().__init__()
            self.transform_input = transform_input

            def inc(key):
                return Inception(*[ch(c, width) for c in specs[key]])

            self.conv1 = BasicConv2d(3, ch(64, width), kernel_size=7, stride=2, padding=3)
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.conv2 = BasicConv2d(ch(64, width), ch(64, width), kernel_size=1)
            self.conv3 = BasicConv2d(ch(64, width), ch(192, width), kernel_size=3, padding=1)
            self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception3a, self.inception3b = inc("3a"), inc("3b")
            self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.inception4a, self.inception4b, self.inception4c = inc("4a"), inc("4b"), inc("4c")
            self.inception4d, self.inception4e = inc("4d"), inc("4e")
            self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
            self.inception5a, self.inception5b = inc("5a"), inc("5b")
            if aux_logits:
                self.aux1 = InceptionAux(ch(512, width), num_classes, width)
                self.aux2 = InceptionAux(ch(528, width), num_classes, width)
            else:
                self.aux1 = self.aux2 = None
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.dropout = nn.Dropout(0.2)
            self.fc = nn.Linear(ch(1024, width), num_classes)

        def forward(self, x):
            if self.transform_input:
                x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
                x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
                x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
                x = torch.cat((x_ch0, x_ch1, x_ch2), 1)
            x = self.maxpool1(self.conv1(x))
            x = self.maxpool2(self.conv3(self.conv2(x)))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            x = self.inception4a(x)
            x = self.inception4d(self.inception4c(self.inception4b(x)))
            x = self.maxpool4(self.inception4e(x))
            x = self.inception5b(self.inception5a(x))
            return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))

    return SimpleNamespace(LeNet5=LeNet5, AlexNet=AlexNet, VGG=VGG, ResNet=ResNet,
                           BasicBlock=BasicBlock, Bottleneck=Bottleneck, CifarResNet=CifarResNet,
                           GoogLeNet=GoogLeNet)
