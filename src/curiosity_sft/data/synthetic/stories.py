"""Original short children's stories for the plain-text (language modelling) demo source.

Written for this project so the demo has story text it may ship; the package binds them into
three Gutenberg-style books of twelve chapters. Paragraphs are separated by a blank line.
"""

from __future__ import annotations

STORIES: tuple[tuple[str, str], ...] = (
    # --- The Lantern Tales -------------------------------------------------------------------
    ("The Hedgehog Who Lost His Lantern", """Every evening Pip the hedgehog carried a small tin lantern along the hedge, so that the beetles and moths could find their way home. One windy night a gust blew the lantern out of his paws and it rolled away into the dark.

Pip searched under the dock leaves and behind the old stone wall, but he could not find it. He sat down on a root and felt very small. Then he noticed a soft green glow moving towards him. It was a line of glow-worms, one after another, each shining a little light.

"You lit the path for us every night," said the first glow-worm. "Tonight we will light it for you." So Pip walked home in a river of green stars, and in the morning he found his lantern caught in a bramble, waiting for him."""),
    ("Mouse and the Very Large Cheese", """A mouse named Tilly found a wheel of cheese at the back of the pantry. It was far too big to carry, far too heavy to push, and far too round to climb.

"I will eat it right here," she decided, and took one bite. Then she thought about her brothers, who were hungry, and her grandmother, who had no teeth left for hard crusts, and the shy mouse next door who never asked for anything.

So Tilly ran home and came back with all of them. They nibbled a tunnel straight through the middle of the cheese and had a feast inside it, sitting in a warm yellow room that smelled wonderful. Grandmother had the softest pieces. When they finished, the cheese had a door at each end, and Tilly said it was the best house she had ever eaten."""),
    ("The Owl Who Asked Why", """Young Hoot was an owl who asked why about everything. Why is the moon round? Why do the rivers run downhill? Why do mice squeak and frogs croak? The older owls grew tired of his questions and told him that a wise owl should simply sit still and look wise.

So Hoot flew off to find the answers himself. He watched the moon for a whole month and saw it grow thin and fat again. He followed a stream from a tiny spring to the wide grey sea. He listened at night and learned that every creature speaks in its own way.

When he came home, the little owlets gathered round him, because he had so many stories. "Why do you know so much?" they asked. Hoot laughed. "Because I kept asking why," he said."""),
    ("The Snail's Long Journey", """Sheldon the snail wanted to see the big oak tree at the far end of the garden. "It will take you all summer," laughed the sparrows. "By the time you get there, you will have forgotten why you went."

Sheldon did not argue. He simply started. On the first day he crossed the cabbage patch and met a ladybird who told him a joke. On the tenth day he slid beneath the rhubarb and listened to the rain drumming on the leaves like a band. On the thirtieth day a kind girl lifted him gently over the path so he would not be stepped on.

At last, on a golden evening, Sheldon reached the oak. It was tall and splendid. But when the sparrows asked what he had seen, he talked about the ladybird, the rain and the girl, and hardly mentioned the tree at all."""),
    ("The Fox and the Borrowed Scarf", """On the first cold morning of winter, Rusty the fox found a red scarf hanging on a fence. It was soft and warm, and it matched his fur perfectly. He wrapped it round his neck and trotted about, feeling very fine.

But as he passed the farmhouse he heard a little girl crying. "My grandmother knitted it for me," she sobbed to her father, "and now it is gone." Rusty looked down at the scarf. It did not feel quite so warm any more.

That night he crept to the farmhouse and hung the scarf on the door handle. In the morning the girl found it and danced with joy. A week later, Rusty found something on the fence where the scarf had been: a small red scarf, fox-sized, with a note that said simply, "Thank you.\""""),
    ("The Rabbit Who Counted Clouds", """Bramble the rabbit liked to lie on her back in the meadow and count clouds. One was shaped like a teapot, one like a sleeping cat, and one like her uncle's ears. Her friends said counting clouds was a waste of a good afternoon.

One day Bramble noticed the clouds were growing dark and tall, piling up like mountains, and the wind smelled of wet stones. She had counted enough clouds to know what that meant. "A storm is coming!" she cried, and ran from burrow to burrow warning everyone.

The rabbits hurried underground just before the thunder rolled and the rain came down in silver sheets. Snug in the warren, they listened to the storm pass overhead. Afterwards, nobody said that cloud counting was a waste of time, and a few of them even asked Bramble to teach them."""),
    ("The Badger's Birthday Surprise", """Old Badger did not like fuss. When his birthday came, he told everybody that he wanted no cake, no presents and certainly no singing. Then he went for a long walk to be sure that nobody could bother him.

His friends were disappointed, but the squirrel had an idea. "He said no cake," she whispered, "but he never said anything about mending his roof." So the moles dug a fresh drain beside his sett, the birds tucked new straw into the gaps, and the rabbits swept his doorstep until it shone.

When Badger came home at dusk, he stopped and stared. Everything was tidy and dry and bright. He sniffed, and coughed, and sniffed again. "I said no fuss," he grumbled. But the next morning he invited them all to breakfast, and he was the one who baked a cake."""),
    ("The Duckling and the Puddle Sea", """A small duckling named Dot had never seen the sea, but she had heard stories of it from a passing gull. "It is water as far as you can see," the gull had said, "with waves and salt and wild wind."

After a heavy rain, Dot found an enormous puddle in the farmyard. She paddled into the middle of it and looked around. The edges seemed very far away. A breeze made little ripples, and she decided they were waves. She tasted the water, and it tasted of mud, which she decided was nearly like salt.

"I have sailed across the sea," she announced proudly when she came back. The older ducks smiled. One day, they knew, Dot would see the real ocean. But for now, a puddle was big enough for a brave little duck to cross."""),
    ("The Bear Who Could Not Sleep", """When autumn came, all the bears curled up for their long winter sleep, except for Bruno. He turned this way and that way in his cave, but his eyes would not stay shut. He was simply not tired yet.

So Bruno went outside into the first snow. He had never seen it before. He watched the flakes settle on the pine trees and listened to the great hush that fell across the forest. He saw a white hare, a fox in its thick coat, and the stars sparkling brighter than they ever did in summer.

At last he yawned a very big yawn and wandered back to his cave. When spring came, the other bears told him he had missed nothing. Bruno only smiled. He dreamed about the snow every night for the rest of the year."""),
    ("The Frog Choir", """Down by the pond lived twelve frogs who sang together every evening. Eleven of them sang low and round, like the hum of a bumblebee. The twelfth, a tiny green frog named Pim, could only sing high and thin, like a whistle.

"You spoil the song," the other frogs told him, so Pim stopped singing and sat alone on a lily pad. Without him the choir was deep and heavy, and it sounded as if something was missing, though nobody could say what.

One night a heron came stalking along the bank. Pim saw it first and let out his sharpest whistle. All the frogs dived into the water just in time. The next evening the choir asked Pim to sing again, and this time they made room for his high voice at the very top of the song, where it shone like a star."""),
    ("The Squirrel's Forgotten Acorns", """Hazel the squirrel buried acorns all autumn long. She buried them under the hedge, beside the gate, in the flower beds and at the edge of the wood. She buried so many that by winter she could remember only half of them.

"What a waste," she sighed, digging up the few she could find. "All those lovely acorns, lost." Her grandfather just winked and told her to wait and see.

Years went by. Hazel grew up and had squirrels of her own. One spring day she walked them along the edge of the wood and stopped in surprise. Everywhere she looked, young oak trees were pushing up towards the sun, one beside the gate, three under the hedge, a whole row at the edge of the wood. Her forgotten acorns had become a forest, and one day it would feed squirrels she would never meet."""),
    ("The Lantern Festival", """Every year, on the longest night, the animals of Thistle Wood held a lantern festival. Each creature made a lantern and carried it through the trees in a long shining line. This year a shy young mole named Moss had nothing to bring, because he could not see well enough to make anything pretty.

"I will only walk at the back," he said quietly. But his friend the hedgehog had an idea. Moss could not see colours, but he could feel shapes, and he had the cleverest paws in the wood. Together they folded paper into a lantern shaped like a star, with many sharp points.

When the candle was lit inside, it threw star-shaped lights across every tree trunk. All the animals gasped. That night Moss did not walk at the back. He walked at the very front, and everyone followed his light."""),
    # --- Stories from Willow Lane ------------------------------------------------------------
    ("The Girl Who Planted a Button", """Nell found a shiny blue button on the pavement outside the bakery. She decided it must be a seed, so she planted it in a flowerpot on her windowsill and watered it every morning.

Her brother laughed. "Buttons don't grow," he said. Nell watered it anyway. After a week, a green shoot poked up through the soil. Her brother stopped laughing and stared. After two weeks, the shoot had leaves. After three weeks, it opened into a bright blue cornflower, exactly the colour of the button.

Nell's mother smiled, because she had seen a cornflower seed blowing in through the open window the same day Nell planted the button. But she never said so. And Nell kept the button, too, in case it needed a second try."""),
    ("Grandpa's Whistling Kettle", """Grandpa's old kettle whistled a little tune whenever the water boiled. It was not a proper tune, just three wobbly notes, but Sam loved it. Every afternoon he would sit at the kitchen table and wait for the kettle to sing.

One day the kettle stopped whistling. The water boiled, but the only sound was a sad hiss. Grandpa said it was worn out and that he would buy a new one. Sam felt as though the whole kitchen had gone quiet.

That evening Sam sat at the table and practised whistling. He could not whistle at all at first, and then only a puff of air, and then, at last, three wobbly notes. The next afternoon, when the water boiled, Sam whistled the kettle's tune for it. Grandpa laughed so much he nearly spilled the tea."""),
    ("The Library Cat", """Willow Lane Library had a grey cat named Dewey who slept on the warmest shelf, between the atlases and the dictionaries. Most visitors never noticed him, because he kept very still and looked a great deal like a cushion.

One rainy afternoon a boy named Theo came in. He was new in town and did not know anybody, and he sat at the corner table feeling lonely. Dewey opened one eye, climbed down from his shelf and walked straight across the table, right over the book Theo was reading, and settled in his lap.

The librarian came over, smiling. "Dewey chose you," she said. "He only chooses readers." Theo came back the next day, and the day after that. By the end of the month he had read eleven books and made three friends, and Dewey had a new warm lap to sleep on."""),
    ("The Lost Kite", """Amir made a kite out of newspaper, string and two thin sticks. It was not beautiful, but it flew higher than any kite on the hill. Then a strong gust snapped the string, and the kite sailed away over the rooftops and disappeared.

Amir was sad all week. On Saturday, a letter arrived with no stamp. Inside was a drawing of his kite stuck in an apple tree, and a message: "Your kite landed in my garden. I cannot climb trees any more. Please come and fetch it. Mrs Green, number 14."

Amir ran to number 14 and climbed the apple tree. When he came down with his kite, Mrs Green had made lemonade. She told him she had built kites herself as a girl. They spent the afternoon flying his kite together, and after that Amir visited every Saturday."""),
    ("The Puddle Jumping Contest", """When the rain stopped, the children of Willow Lane held a puddle jumping contest. The rules were simple: whoever made the biggest splash would win. Everyone took turns leaping into the huge puddle by the post box.

Ruby jumped and made a good splash. Leo jumped and made a better splash. Then little Mo, who was only four, took a run up, closed his eyes and landed with both feet. The splash was so big that it soaked everyone, including the postman, who happened to be walking past.

For a moment nobody moved. Then the postman shook the water off his hat and began to laugh. "I think," he said, "that we have a winner." He gave Mo a gold sticker from his bag, and Mo wore it on his raincoat for the rest of the year."""),
    ("The Bus That Went the Wrong Way", """Every morning the number nine bus went the same way: down the hill, past the market, over the bridge and up to the school. But one foggy Monday, the new driver took a wrong turn, and the bus rolled along a lane nobody had ever been down before.

The children pressed their noses against the windows. They saw a field full of sheep, a windmill with only three sails, and a pond where a heron stood on one leg. The driver was worried, but the children were delighted. "Keep going!" they shouted.

The lane looped round and came out right beside the school, only five minutes late. The teacher asked why the children were all so excited. That afternoon they drew pictures of the windmill and the heron, and the driver pinned them up inside the bus."""),
    ("Granny's Button Box", """At Granny's house there was a tin box full of buttons. There were wooden buttons, glass buttons, buttons shaped like flowers and one that looked like a tiny ladybird. On rainy days Lucy would tip them out onto the rug and sort them.

Granny always knew where each button had come from. "That one was from my wedding dress," she would say. "That one was from your mother's first coat. And that little brass one came from a soldier's jacket, long ago, when your great-grandfather came home."

Lucy realised that the box was not really full of buttons at all. It was full of stories. So she started a box of her own, and when her jacket lost a button at school that spring, she put it in carefully and wrote down the day it happened."""),
    ("The Snowman Who Wanted a Hat", """The children built a fine snowman in the park, with pebbles for eyes and a carrot for a nose. But they had no hat to give him, and all afternoon the snowman watched people walk past in woolly hats, bobble hats and tall black hats.

That evening an old man stopped on his way home. He looked at the snowman for a long time, then took off his own grey cap and set it gently on the snowman's head. "There," he said. "You look much warmer now." Then he walked home bareheaded through the snow.

The next morning the children found the cap and a note pinned to it. They asked around the neighbourhood until they found the old man and returned it, along with a card they had all signed. Every winter after that, the snowman in the park wore a cap."""),
    ("The Garden Gnome's Adventure", """In the corner of Mr Patel's garden stood a little stone gnome with a fishing rod. He had stood there for thirty years, fishing in a pond that had dried up long ago. Priya, who lived next door, thought he looked bored.

So one day she carried him, very carefully, on an adventure. She put him on the swing and pushed him gently. She took him to the end of the street to see the postbox. She sat him on the wall to watch the sunset, and she took photographs of everything.

Then she returned him to his corner before Mr Patel came home. A week later, she printed the photographs and left them on his doorstep. Mr Patel laughed until he cried. The next day the gnome had a brand-new pond, filled with fresh water, and two goldfish to keep him company."""),
    ("The Boy Who Collected Sounds", """Finn did not collect stamps or shells. He collected sounds. He carried a small notebook and wrote down every sound he liked: the creak of the third stair, the hiss of rain on the bus stop roof, the clatter of the milk van at dawn.

His teacher asked the class to bring their collections to school. The other children brought stickers and coins and football cards. Finn brought his notebook, stood at the front and began to read, and then to make each sound with his mouth and hands.

He creaked like the stair. He hissed like the rain. He clattered like the milk van. The class was silent, listening, and then everybody wanted to try. By the end of the day the whole class had notebooks of their own, and the classroom had never been so noisy."""),
    ("The Birthday Party Nobody Came To", """Olivia sent out invitations for her birthday party, but she wrote the wrong date on every card. On the day of the party, she waited by the door in her best dress, with balloons tied to the gate and a cake on the table. Nobody came.

Her father noticed the mistake on a spare card and explained it gently. Olivia felt foolish and sad. But her father said the cake would not keep, so they took it next door to old Mr Brown, who lived alone and had not had visitors for weeks.

Mr Brown was so pleased that he put on his best tie. He played the piano for them and told them stories about sailing ships. A week later, on the wrong date, all of Olivia's friends arrived for the party, and Mr Brown came too, and played the piano again."""),
    ("The Broken Umbrella", """Jasper's umbrella had a broken spoke, so one side always drooped. When it rained, half of him stayed dry and the other half got soaked. His sister said he looked like a lopsided mushroom.

One afternoon Jasper was walking home in a downpour when he saw a little girl standing under a tree, crying because she had lost her way. He walked her home under his umbrella, holding the good side over her and the broken side over himself. By the time they reached her street, one of his shoulders was dripping.

The girl's mother thanked him, and the next day a parcel arrived for Jasper. Inside was a new umbrella, bright yellow and perfectly round. Jasper liked it very much. But he kept the old one too, because it had been good enough when it mattered."""),
    ("Saturday at the Market", """On Saturdays, Rosa helped her aunt run a stall at the market, selling honey from the hives behind the house. Rosa's job was to count the change and to smile, and she was good at both.

One Saturday a boy came to the stall with a handful of coins. He wanted honey for his mother, who was ill, but he did not have quite enough. Rosa looked at her aunt, and her aunt looked at the sky, pretending not to notice. So Rosa counted his coins twice, very slowly, and announced that they were exactly the right amount.

The boy hurried away with the jar held tightly in both hands. At the end of the day, Rosa's aunt gave her a small jar of her own. "Honey tastes sweetest," she said, "when some of it is given away.\""""),
    # --- The Sky and Sea Book ----------------------------------------------------------------
    ("The Cloud Who Was Afraid of Rain", """High above the hills floated a small white cloud named Puff. He grew a little heavier every day, and he knew that soon he would have to rain. The idea frightened him, because he thought that raining meant disappearing.

"Where will I go?" he asked the wind. The wind carried him over a dry field where the farmer was looking up at the sky, and over a garden where the flowers drooped in the heat. "They are waiting for you," the wind said.

So Puff let go. He fell as soft rain on the field and the garden, and the flowers lifted their heads. Then the sun came out, and the water rose back into the sky as warm mist, gathering and gathering, until Puff was a cloud again, floating high above the hills, and not a bit afraid."""),
    ("The Lighthouse Keeper's Cat", """On a rocky island lived a lighthouse keeper and her cat, Marmalade. Every night the keeper climbed the winding stairs to light the great lamp, and Marmalade followed, one step behind, all the way to the top.

One stormy night the keeper slipped and hurt her ankle halfway up the stairs. She could not climb any higher, and the lamp was still dark. Out at sea, a fishing boat was heading straight for the rocks.

Marmalade ran to the top. She could not light the lamp, but she could knock the keeper's old hand bell off its hook. It clanged down the stairs, and the sound carried across the water. The fishermen heard it and turned their boat away from the rocks just in time. In the morning they rowed to the island to say thank you, and they brought Marmalade the biggest fish they had caught."""),
    ("The Star Who Fell Into the Sea", """One summer night a small star slipped from the sky and fell, fizzing, into the sea. It sank down and down until it rested on the sandy bottom, glowing softly among the shells.

The fish had never seen anything so lovely. The crabs came to warm their claws beside it, and the old turtle said it was the best light he had read by in a hundred years. But the star was homesick. Every night it looked up through the dark water at its brothers and sisters twinkling far above.

So the creatures of the sea worked together. The turtle carried the star on his back to the surface, a whale blew it high into the air with a mighty spout, and a passing gull caught it and flew it upwards until it found its place again. Now, on clear nights, that star shines a little greener than the others."""),
    ("The Wind Who Lost Her Voice", """The north wind loved to howl. She howled down chimneys and across the moors and through the gaps in old barn doors. But one winter morning she woke up and found that she could only whisper.

At first she was upset. Nobody noticed her. The trees did not bend, the washing did not flap, and the children did not hold on to their hats. Then she began to notice things she had always been too loud to hear: a robin singing on a gatepost, the tick of ice melting, two old friends laughing on a bench.

When her voice came back in the spring, the north wind still howled sometimes, because that is what winds do. But every so often she went quiet on purpose, just to listen, and those were the gentlest days of the year."""),
    ("The Little Boat", """Ivy made a boat from a walnut shell, with a toothpick mast and a sail cut from a paper bag. She set it on the stream at the bottom of the garden and watched it bob away between the reeds.

The little boat sailed past a sleeping frog and under a fallen branch. It spun in a whirlpool and raced down a tiny waterfall. At the bridge a boy saw it, fished it out, and wrote on the sail in pencil, "Saw you go by! Tom, Bridge Street." Then he set it back on the water.

Further down, a girl added her name, and then a fisherman added his. Weeks later, Ivy's uncle found the walnut boat stranded on the beach where the stream met the sea. He brought it home to her, and the sail was covered with names, like a map of everyone it had met."""),
    ("The Moon's Day Off", """The moon had worked every night for as long as anyone could remember. One evening she yawned and said to the sun, "I am so tired. Could I have one night off?" The sun was not sure, but he agreed to ask the stars to help.

That night, when the moon did not rise, the stars shone as brightly as they could. The owls hooted in surprise, and the foxes looked up, puzzled. But the stars did their best, and the night was still beautiful, darker and glittering all over, like a sky full of sugar.

The next evening the moon rose again, rested and round and silver. Everyone was glad to see her. Still, from then on, once a month, the moon takes a night off, and people call it the new moon, and the stars have their turn to shine."""),
    ("The Seagull Who Wanted to Be Polite", """Most seagulls at Harbour Bay were terrible at manners. They snatched chips from people's hands and shouted at each other from dawn till dusk. But one young gull named Gilbert wanted to be different.

He practised saying please in a quiet squawk. He practised waiting his turn. When a little boy dropped a sandwich on the sand, Gilbert did not grab it. He stood politely beside it and bowed his head.

The little boy was so surprised that he tore the sandwich in half and gave Gilbert the bigger piece. The other gulls watched in astonishment. The next day two of them tried bowing too, and by the end of the summer, the fishermen said Harbour Bay had the best-mannered seagulls on the whole coast, although they still shouted a little in the mornings."""),
    ("The Rainbow Painter", """Once there was a painter who lived at the edge of the sky. After every storm, it was her job to paint the rainbow, one colour at a time, from red on the outside to violet on the inside.

One day she noticed that she had run out of orange. She searched her whole cottage but found only empty pots. "A rainbow without orange!" she cried. "Whatever shall I do?" Then she looked out of the window and saw the sunset glowing over the sea.

She ran out with her brush, dipped it into the edge of the sunset, and hurried back to finish her rainbow just before the rain stopped. If you ever look closely at a rainbow after an evening storm, you may notice that the orange stripe is a little warmer and brighter than the rest."""),
    ("The Tide Pool Kingdom", """When the tide went out, it left behind a small rock pool, and in that pool lived a whole kingdom. There was a crab who called himself king, a starfish who was his gardener and a family of shrimps who were his very busy messengers.

One day a girl with a bucket leaned over the pool. The kingdom panicked. The crab hid under a stone, and the shrimps darted in all directions. But the girl did not scoop anybody up. She only watched, and counted, and drew them carefully in her notebook.

Then she lifted a plastic bag out of the pool, the one that had been floating there for days, blocking out the light. She put it in her bucket and walked away. The crab came out from under his stone and declared her a friend of the kingdom forever."""),
    ("The Kite and the Storm Cloud", """A red kite flew high over the hill, dancing in the breeze while a boy held its string. It looped and dipped and rose, and it felt like the freest thing in the world. Then it noticed a dark storm cloud rolling in from the sea.

"Come up higher," rumbled the storm cloud. "Cut your string and fly with me. I will take you over mountains and oceans." The kite was tempted. It tugged at the string, wondering how far it might go.

But then it looked down at the boy, holding the string so carefully, his face turned up towards the sky, laughing. The kite realised that without the string it would not be flying at all, only falling. So it dipped its tail to the storm cloud, turned homeward, and let the boy reel it down just before the first drops of rain."""),
    ("Goodnight, Little Island", """On a small island in a wide blue sea, everything got ready for bed. The fishermen pulled their boats up onto the shingle. The goats wandered home from the cliffs. The gulls settled on the roof of the harbour master's hut, shuffling their feathers.

In the last cottage on the hill, a little girl named Elsie looked out of her window. "Goodnight, boats," she whispered. "Goodnight, goats. Goodnight, gulls." The lighthouse blinked its slow beam across the water as if to answer her.

The sea hushed against the rocks, over and over, like someone breathing in their sleep. The stars came out one by one. And Elsie, warm under her blanket with the window open a crack so that she could hear the waves, fell asleep before she had finished saying goodnight to the moon."""),
)
